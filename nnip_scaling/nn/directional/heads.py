"""Readouts of the directional family: per-block outputs, the energy head and direct edge forces."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from nnip_scaling.nn.directional.basis import DirectionalFeatures
from nnip_scaling.nn.directional.interactions import AtomUpdate
from nnip_scaling.nn.directional.layers import Dense, residual_stack
from nnip_scaling.ops import scatter_sum

__all__ = ["DirectionalEnergyHead", "DirectionalOutput", "EdgeForceHead"]


class DirectionalOutput(nn.Module):
    r"""Per-block readout (GemNet-OC's ``OutputBlock``): atom features for the energy, edge features
    for the forces.

    .. math::

        x^E_v &= \mathrm{Res}^3\Big(\big(\mathrm{Res}^3(\tfrac{1}{\sqrt{1+n_v}}\textstyle\sum_u m_{uv}
                 \odot W_r e_{uv}) + h_v\big)/\sqrt2\Big),\\
        x^F_{uv} &= \mathrm{Res}^3(m_{uv}) \odot W'_r e_{uv}\quad(\text{direct forces only}).

    Forward:
        ``(h [n, w], m [E, w], features) -> (x_E [n, w], x_F [E, w] or None)``.
    """

    def __init__(self, width: int, *, basis_dim: int = 16, direct_forces: bool = True) -> None:
        super().__init__()
        self.atom = AtomUpdate(width, basis_dim=basis_dim)
        self.after_atom = residual_stack(width, 3)
        if direct_forces:
            self.edge = residual_stack(width, 3)
            self.dense_rbf_forces = Dense(basis_dim, width, activation=False)
        else:
            self.edge = None
            self.dense_rbf_forces = None

    def forward(self, h: Tensor, m: Tensor, features: DirectionalFeatures) -> tuple[Tensor, Tensor | None]:
        x = self.atom(m, features.rbf_output, features)
        x_e = self.after_atom((x + h) * (1.0 / math.sqrt(2.0)))
        if self.edge is None:
            return x_e, None
        assert self.dense_rbf_forces is not None
        return x_e, self.edge(m) * self.dense_rbf_forces(features.rbf_output)


class EdgeForceHead(nn.Module):
    r"""Direct forces as a sum over edges of invariant scalars times unit edge vectors.

    .. math:: F_v = \sum_{u \in \mathcal N(v)} f_{uv}\,\hat r_{uv},\qquad
              f = W_o\,\mathrm{Res}^2(\sigma(W_i\,[x^F_0, \dots, x^F_d])),\quad \hat r_{uv} = \frac{x_u - x_v}{\lVert x_u - x_v\rVert}

    O(3)-equivariant because :math:`f_{uv}` is invariant and :math:`\hat r_{uv}` rotates (and
    reflects) with the molecule; translation invariant; an atom without edges gets zero force.

    Args:
        in_features: size of the concatenated edge features (``(depth + 1) * width``).
        width: hidden size.

    Forward:
        ``(state, graph)`` with ``state.edge_scalars [E, in_features]``, ``state.unit [E, 3]``,
        ``state.edge_target [E]``; returns ``[n_atoms, 3]``.
    """

    def __init__(self, in_features: int, width: int) -> None:
        super().__init__()
        self.dense = Dense(in_features, width, activation=True)
        self.layers = residual_stack(width, 2)
        self.out = Dense(width, 1, activation=False, readout=True)

    def forward(self, state: Any, graph: Any) -> Tensor:
        f = self.out(self.layers(self.dense(state.edge_scalars)))  # [E, 1]
        return scatter_sum(f * state.unit, state.edge_target, graph.n_atoms)


class DirectionalEnergyHead(nn.Module):
    r"""Per-atom energies from the concatenated output-block features (GemNet-OC's ``out_mlp_E``).

    .. math:: e_v = W_o\,\mathrm{Res}^2\big(\sigma(W_i\,[x^E_{0,v}, \dots, x^E_{d,v}])\big)

    Args:
        in_features: ``(depth + 1) * width``.
        width: hidden size.

    Shapes:
        ``[n_atoms, in_features] -> [n_atoms]``.
    """

    def __init__(self, in_features: int, width: int) -> None:
        super().__init__()
        self.dense = Dense(in_features, width, activation=True)
        self.layers = residual_stack(width, 2)
        self.out = Dense(width, 1, activation=False, readout=True)

    def forward(self, scalars: Tensor) -> Tensor:
        return self.out(self.layers(self.dense(scalars))).squeeze(-1)
