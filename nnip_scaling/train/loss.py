r"""The training objective of the paper, eq. (1): per-atom energy MAE plus the per-atom force L2 norm.

For one molecule :math:`X` with :math:`n` atoms,

.. math::

    \mathcal{L}(\phi_\theta, X) = \frac{\lambda_e}{n}\,\lvert e_\theta(X) - e(X)\rvert
        + \frac{\lambda_f}{n} \sum_{i=1}^{n} \lVert f_{\theta,i}(X) - f_i(X) \rVert_2 ,
    \qquad \lambda_e = \lambda_f = 1 \text{ by default},

and a batch's loss is the mean of :math:`\mathcal{L}` over its molecules (every molecule weighs the same,
whatever its size). Energies and forces are the normalised targets of appendix D
(:class:`~nnip_scaling.data.Normaliser`), so the two terms are dimensionless and comparable.

:func:`loss_terms` returns the two per-molecule terms (``[n_graphs]`` each), which is what a data-parallel
run needs to average exactly over a global batch split across ranks; :func:`force_field_loss` reduces
them to the batch mean.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from nnip_scaling.graph import AtomicGraph
from nnip_scaling.ops import scatter_sum

__all__ = ["LossTerms", "loss_terms", "force_field_loss", "check_weights"]


class LossTerms(NamedTuple):
    """Per-molecule terms of eq. (1), already multiplied by their weights.

    Attributes:
        energy: ``[n_graphs]``, :math:`\\lambda_e \\lvert e_\\theta - e\\rvert / n`.
        force: ``[n_graphs]``, :math:`\\lambda_f \\sum_i \\lVert f_{\\theta,i} - f_i\\rVert_2 / n`.
    """

    energy: Tensor
    force: Tensor

    @property
    def total(self) -> Tensor:
        """``[n_graphs]``: energy + force term of every molecule."""
        return self.energy + self.force


def check_weights(energy_weight: Any, force_weight: Any) -> tuple[float, float]:
    """Validate :math:`\\lambda_e, \\lambda_f` (finite, >= 0, not both 0); returns them as floats."""
    out = []
    for name, v in (("energy_weight", energy_weight), ("force_weight", force_weight)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(v).__name__}")
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
        out.append(float(v))
    if out[0] == 0 and out[1] == 0:
        raise ValueError("energy_weight and force_weight are both 0: the loss would be identically zero")
    return out[0], out[1]


def loss_terms(
    energy: Tensor,
    forces: Tensor,
    graph: AtomicGraph,
    *,
    energy_weight: float = 1.0,
    force_weight: float = 1.0,
) -> LossTerms:
    r"""Per-molecule terms of eq. (1) for predictions ``(energy, forces)`` against ``graph``'s labels.

    Args:
        energy: predicted energies ``[n_graphs]``.
        forces: predicted forces ``[n_atoms, 3]``.
        graph: the batch, with ``energy [n_graphs]`` and ``forces [n_atoms, 3]`` labels.
        energy_weight: :math:`\lambda_e` (>= 0).
        force_weight: :math:`\lambda_f` (>= 0).

    Returns:
        :class:`LossTerms` with two ``[n_graphs]`` tensors. A molecule with no atoms contributes 0.

    Shapes:
        ``energy [n_graphs]``, ``forces [n_atoms, 3]`` -> ``LossTerms(energy [n_graphs], force [n_graphs])``.

    Raises:
        TypeError: ``graph`` is not an ``AtomicGraph``.
        ValueError: the graph has no labels, or shapes do not match.

    The norm :math:`\lVert\cdot\rVert_2` has no derivative at 0; its gradient there is taken as 0 (a
    perfectly predicted atom pulls on nothing), so training never produces NaN from an exact fit.
    """
    if not isinstance(graph, AtomicGraph):
        raise TypeError(f"graph must be an AtomicGraph, got {type(graph).__name__}")
    if graph.energy is None or graph.forces is None:
        raise ValueError("graph must carry energy and forces labels to compute the loss")
    if tuple(energy.shape) != (graph.n_graphs,):
        raise ValueError(f"energy must have shape [n_graphs] = [{graph.n_graphs}], got {list(energy.shape)}")
    if tuple(forces.shape) != (graph.n_atoms, 3):
        raise ValueError(f"forces must have shape [n_atoms, 3] = [{graph.n_atoms}, 3], got {list(forces.shape)}")
    le, lf = check_weights(energy_weight, force_weight)
    n = graph.n_atoms_per_graph.to(energy.dtype).clamp(min=1.0)
    e_term = (energy - graph.energy.to(energy.dtype)).abs() / n
    diff = forces - graph.forces.to(forces.dtype)
    # ||d||_2 with a zero subgradient at d = 0 (sqrt'(0) would be inf -> NaN through 0 * inf).
    sq = (diff * diff).sum(dim=-1)
    nonzero = sq > 0
    norm = torch.where(nonzero, torch.sqrt(torch.where(nonzero, sq, torch.ones_like(sq))), torch.zeros_like(sq))
    f_term = scatter_sum(norm, graph.batch, graph.n_graphs) / n
    return LossTerms(energy=le * e_term, force=lf * f_term)


def force_field_loss(
    output: Any,
    graph: AtomicGraph,
    *,
    energy_weight: float = 1.0,
    force_weight: float = 1.0,
) -> Tensor:
    """The batch loss: mean over molecules of eq. (1).

    Args:
        output: the model's output, with ``.energy [n_graphs]`` and ``.forces [n_atoms, 3]``
            (a :class:`~nnip_scaling.models.ModelOutput`).
        graph: the labelled batch.
        energy_weight, force_weight: :math:`\\lambda_e, \\lambda_f`.

    Returns:
        a scalar tensor.

    Shapes:
        -> ``[]``.
    """
    terms = loss_terms(output.energy, output.forces, graph, energy_weight=energy_weight, force_weight=force_weight)
    return terms.total.mean()
