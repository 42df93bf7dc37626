r"""Output heads: per-atom energies (summed per graph by the model) and direct-force heads.

Which heads are equivariant:

========================  ==========================================  =====================================
head                      computes                                     symmetry
========================  ==========================================  =====================================
:class:`EnergyHead`       :math:`e_v = \mathrm{MLP}(s_v)` on invariant  invariant when :math:`s_v` is invariant
                          scalars; :math:`E = \sum_{v} e_v` per graph  (cartesian/spherical/directional);
                                                                       *not* for the unconstrained family,
                                                                       whose :math:`h_v` are not invariant
:class:`MLPForceHead`     :math:`F_v = \mathrm{MLP}(h_v) \in R^3`      **not** equivariant, by design
                          (unconstrained family)                       (paper C.1: the negative control)
:class:`VectorForceHead`  :math:`F_v = X_v\,(a + W s_v)`, a learned    O(3)-equivariant: a linear combination
                          combination of the vector channels           of equivariant vectors with invariant
                          (cartesian family)                           coefficients
========================  ==========================================  =====================================

All heads use the μP readout initialisation on their last layer (``nnip_scaling.nn.mlp``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from nnip_scaling.nn.mlp import MLP, init_readout_

__all__ = ["EnergyHead", "MLPForceHead", "VectorForceHead"]


class EnergyHead(nn.Module):
    r"""Per-atom energy :math:`e_v = W_2\,\sigma(W_1 s_v + b_1) + b_2` from invariant scalars.

    The model sums :math:`e_v` over the atoms of each graph (:math:`E = \sum_{v \in G} e_v`), which makes
    the energy extensive and permutation invariant.

    Args:
        in_features: size of the per-atom scalars :math:`s_v`.
        hidden: hidden size (default ``in_features``).

    Shapes:
        ``[n_atoms, in_features] -> [n_atoms]``.
    """

    def __init__(self, in_features: int, *, hidden: int | None = None) -> None:
        super().__init__()
        self.mlp = MLP(in_features, [in_features if hidden is None else hidden], 1, readout=True)

    def forward(self, scalars: Tensor) -> Tensor:
        return self.mlp(scalars).squeeze(-1)


class MLPForceHead(nn.Module):
    r"""Direct forces from per-atom features by an MLP: :math:`F_v = W_2\,\sigma(W_1 h_v + b_1) + b_2 \in \mathbb R^3`.

    **Not equivariant** (a rotation of the input does not rotate the output): this is the unconstrained
    family's head (paper C.1), which learns rotations only from data or augmentation.

    Args:
        in_features: size of :math:`h_v`.
        hidden: hidden size (default ``in_features``).

    Forward: ``(state, graph)`` with ``state.scalars`` ``[n_atoms, in_features]``; ``graph`` unused.

    Shapes:
        ``state.scalars [n_atoms, in_features] -> [n_atoms, 3]``.
    """

    def __init__(self, in_features: int, *, hidden: int | None = None) -> None:
        super().__init__()
        self.mlp = MLP(in_features, [in_features if hidden is None else hidden], 3, readout=True)

    def forward(self, state: Any, graph: Any = None) -> Tensor:
        return self.mlp(state.scalars)


class VectorForceHead(nn.Module):
    r"""Direct forces as a learned combination of vector channels (cartesian family):

    .. math:: F_v = \sum_{e=1}^{E} D_{v,:,e}\,\big(a_e + (W s_v)_e\big),

    with :math:`D_v = X_v - x_v\mathbf 1^\top` the displacement form of the vector channels
    (translation-invariant) and :math:`s_v` the invariant scalars. The coefficients are invariant and
    :math:`D_v` is :math:`O(3)`-equivariant, so the forces are **O(3)-equivariant** and
    translation-invariant. μP: :math:`W` readout init :math:`\mathcal N(0, 1/w^2)`, :math:`a = 0`.

    Args:
        in_features: size :math:`w` of :math:`s_v`.
        vector_channels: :math:`E`.

    Forward: ``(state, graph)`` with ``state.scalars [n_atoms, w]`` and ``state.vectors
    [n_atoms, 3, E]``; ``graph`` unused.

    Shapes:
        -> ``[n_atoms, 3]``.
    """

    def __init__(self, in_features: int, vector_channels: int) -> None:
        super().__init__()
        self.lin = init_readout_(nn.Linear(in_features, vector_channels, bias=True))

    def forward(self, state: Any, graph: Any = None) -> Tensor:
        coeff = self.lin(state.scalars)  # [n_atoms, E]
        return (state.vectors * coeff.unsqueeze(1)).sum(dim=-1)
