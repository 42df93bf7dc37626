r"""Neighbour aggregation: how the messages into an atom are summed and normalised (one concept).

Every family sums per-edge messages :math:`m_{u\to v}` into their target atom :math:`v`. Three forms:

``"mean"`` (the paper's eq. 8)
    :math:`\displaystyle a_v = \frac{1}{|\mathcal N(v)|}\sum_{u\in\mathcal N(v)} m_{u\to v}`.
    Scale-free, but **discontinuous**: when a neighbour crosses the cutoff, :math:`|\mathcal N(v)|`
    changes by one, however smoothly the message itself vanishes, so the energy jumps (and molecular
    dynamics does not conserve energy). Messages are used as the family computes them.

``"soft_mean"`` (envelope-weighted neighbour count)
    :math:`\displaystyle a_v = \frac{\sum_u u(r_{uv})\, m_{u\to v}}{1 + \sum_u u(r_{uv})}`, with
    :math:`u` the polynomial cutoff envelope (:func:`~nnip_scaling.geometry.polynomial_envelope`,
    :math:`u = 1` at :math:`r = 0`, :math:`u = u' = u'' = 0` at the cutoff). Numerator and denominator
    are :math:`C^2` functions of the positions, and the denominator is :math:`\ge 1`, so :math:`a_v` is
    :math:`C^2` too, also when the last neighbour leaves (:math:`a_v \to 0`; a plain envelope-weighted
    mean :math:`\sum u m / \sum u` would jump to 0 there). With :math:`n` neighbours deep inside the
    cutoff it is :math:`n/(n+1)` times the mean: features keep the scale of the paper's models.

``"sum"`` (a fixed normaliser, as MACE and NequIP use)
    :math:`\displaystyle a_v = \frac{1}{\bar n}\sum_u u(r_{uv})\, m_{u\to v}`, :math:`\bar n` =
    ``avg_num_neighbors`` (a constant; ideally the training set's mean neighbour count). Smooth
    (:math:`C^2`); the aggregated features grow with the coordination number.

``"soft_mean"`` and ``"sum"`` multiply every message by the envelope, so the aggregate is smooth even
for a family whose messages do not vanish at the cutoff (e.g. the Cartesian family's :math:`\phi_m`).
Which form each family uses by default, and why: docs/models/smoothness.md.

Two entry points, the same arithmetic: :func:`aggregate` (sum the messages now) and
:func:`edge_weights` (per-edge factors :math:`w_{uv}` with :math:`a_v = \sum_u w_{uv} m_{u\to v}`,
for a family that folds the factor into its messages, such as the spherical SO(2) convolution).
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from nnip_scaling.geometry import polynomial_envelope
from nnip_scaling.ops import scatter_mean, scatter_sum, segment_counts

__all__ = [
    "AGGREGATIONS",
    "SMOOTH_AGGREGATIONS",
    "aggregate",
    "check_aggregation",
    "check_avg_num_neighbors",
    "edge_weights",
    "soft_neighbor_count",
]

#: The aggregation forms, in the order of the module docstring.
AGGREGATIONS: tuple[str, ...] = ("mean", "soft_mean", "sum")
#: The forms whose result is a smooth (C^2) function of the positions.
SMOOTH_AGGREGATIONS: frozenset[str] = frozenset({"soft_mean", "sum"})


def check_aggregation(value: Any, *, name: str = "aggregation") -> str:
    """Return ``value`` if it is one of :data:`AGGREGATIONS`, else raise naming ``name``."""
    if not isinstance(value, str) or value not in AGGREGATIONS:
        raise ValueError(
            f"{name} must be one of {AGGREGATIONS} ('mean': the paper's eq. 8, discontinuous at the cutoff; "
            f"'soft_mean' or 'sum': smooth), got {value!r}"
        )
    return value


def check_avg_num_neighbors(value: Any, *, name: str = "avg_num_neighbors") -> float:
    """Return ``float(value)`` if it is a finite number > 0, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return float(value)


def soft_neighbor_count(envelope: Tensor, target: Tensor, n_atoms: int) -> Tensor:
    r"""Envelope-weighted neighbour count :math:`n_v = \sum_{u\in\mathcal N(v)} u(r_{uv})`.

    A :math:`C^2` stand-in for :math:`|\mathcal N(v)|`: a neighbour enters it continuously as it
    crosses the cutoff.

    Shapes:
        ``envelope [E]``, ``target [E]`` (int64) -> ``[n_atoms]``.
    """
    return scatter_sum(envelope, target, n_atoms)


def _broadcast(x: Tensor, like: Tensor) -> Tensor:
    return x.view(-1, *([1] * (like.dim() - 1)))


def edge_weights(
    dist: Tensor,
    target: Tensor,
    n_atoms: int,
    *,
    aggregation: str,
    cutoff: float,
    avg_num_neighbors: float = 16.0,
) -> Tensor:
    r"""Per-edge factors :math:`w_{uv}` such that :math:`a_v = \sum_{u} w_{uv}\, m_{u\to v}`.

    ``"mean"``: :math:`1/|\mathcal N(v)|`; ``"soft_mean"``: :math:`u(r_{uv}) / (1 + n_v)`;
    ``"sum"``: :math:`u(r_{uv}) / \bar n` (module docstring).

    Args:
        dist: ``[E]`` edge lengths :math:`r_{uv}` (Å; differentiable for conservative forces).
        target: ``[E]`` int64 target atom :math:`v` of each edge.
        n_atoms: number of atoms.
        aggregation: one of :data:`AGGREGATIONS`.
        cutoff: :math:`c` of the envelope (Å).
        avg_num_neighbors: :math:`\bar n` of ``"sum"`` (> 0).

    Shapes:
        ``dist [E]``, ``target [E]`` -> ``[E]`` (dtype of ``dist``).
    """
    check_aggregation(aggregation)
    if aggregation == "mean":
        count = segment_counts(target, n_atoms).clamp(min=1).to(dist.dtype)
        return 1.0 / count.index_select(0, target)
    env = polynomial_envelope(dist, cutoff=cutoff)
    if aggregation == "sum":
        return env / check_avg_num_neighbors(avg_num_neighbors)
    return env / (1.0 + soft_neighbor_count(env, target, n_atoms)).index_select(0, target)


def aggregate(
    messages: Tensor,
    dist: Tensor,
    target: Tensor,
    n_atoms: int,
    *,
    aggregation: str,
    cutoff: float,
    avg_num_neighbors: float = 16.0,
) -> Tensor:
    r"""Aggregate per-edge ``messages`` into their targets with the form ``aggregation``.

    ``"mean"`` is :func:`~nnip_scaling.ops.scatter_mean` of the messages as given (the paper's eq. 8,
    bit for bit what the paper-form models computed before this option existed); the smooth forms
    weight each message by the envelope :math:`u(r_{uv})` and divide by :math:`1 + n_v`
    (``"soft_mean"``) or :math:`\bar n` (``"sum"``). An atom without neighbours gets 0.

    Args:
        messages: ``[E, *F]`` per-edge messages (edge ``u -> v``).
        dist: ``[E]`` edge lengths (unused by ``"mean"``).
        target: ``[E]`` int64 target atoms.
        n_atoms: number of atoms.
        aggregation, cutoff, avg_num_neighbors: as in :func:`edge_weights`.

    Shapes:
        ``messages [E, *F]`` -> ``[n_atoms, *F]``.
    """
    check_aggregation(aggregation)
    if aggregation == "mean":
        return scatter_mean(messages, target, n_atoms)
    env = polynomial_envelope(dist, cutoff=cutoff)
    total = scatter_sum(messages * _broadcast(env, messages), target, n_atoms)
    if aggregation == "sum":
        return total / check_avg_num_neighbors(avg_num_neighbors)
    denom = 1.0 + soft_neighbor_count(env, target, n_atoms)
    return total / _broadcast(denom, total)
