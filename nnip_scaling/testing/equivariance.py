r"""Check that a potential respects the symmetries of physics.

For a model :math:`\phi: X \mapsto (E, F)` the energy must be invariant and the forces equivariant:

.. math::
    E(QX + t) = E(X), \qquad F(QX + t) = F(X)\,Q^\top \quad (Q \in SO(3) \text{ or } O(3)),

and both must commute with permutations of the atoms of a molecule and of the molecules of a batch.
:func:`equivariance_error` measures the relative violation of each identity; :func:`assert_equivariant`
raises ``AssertionError`` listing every identity violated beyond tolerance. Point them at your own
model: anything callable as ``model(graph)`` returning an object with ``.energy [n_graphs]`` and
``.forces [n_atoms, 3]`` works.

Relative error of a transform :math:`g` on output :math:`y`:
:math:`\lVert y(gX) - \rho(g)\,y(X) \rVert / \max(\lVert y(X) \rVert, \epsilon)` (Frobenius norms over
the whole batch), :math:`\epsilon` the dtype's smallest normal number.

Edges: if the graph has edges, the transformed graphs carry the *same* edges, re-indexed exactly
(rotations and translations do not change the neighbour set, permutations relabel it), so a rounding
flip at the cutoff can never masquerade as a symmetry violation. Graphs without edges are passed as
they are and the model builds its own.

Rotations are applied about each molecule's centroid, with an independent rotation per molecule, so a
rotation test does not also test translation invariance.

Which group: ``group="O3"`` (rotations and reflections), ``"SO3"`` (rotations only) or ``"none"``
(translations and permutations only). Left out, the model's declared ``symmetry_group`` class
attribute is used (every family of this package declares one: cartesian and directional ``"O3"``,
spherical ``"SO3"``, unconstrained ``"none"``), and ``"SO3"`` for models that declare nothing. When a
check fails beyond what the model declares (e.g. ``group="O3"`` on the SO(3) spherical family), the
message says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import torch
from torch import Tensor

from nnip_scaling.graph import AtomicGraph, collate

__all__ = ["EquivarianceReport", "equivariance_error", "assert_equivariant", "declared_group",
           "default_tolerance", "GROUPS"]

CHECKS = ("rotation", "reflection", "translation", "atom_permutation", "graph_permutation")
GROUPS = ("O3", "SO3", "none")
# The checks each group implies (when ``checks`` is left out).
_GROUP_CHECKS = {
    "O3": ("rotation", "reflection", "translation", "atom_permutation", "graph_permutation"),
    "SO3": ("rotation", "translation", "atom_permutation", "graph_permutation"),
    "none": ("translation", "atom_permutation", "graph_permutation"),
}
_GROUP_TEXT = {"O3": "O(3)-equivariant (rotations and reflections)",
               "SO3": "SO(3)-equivariant, not O(3) (rotations, no reflections)",
               "none": "not rotation-equivariant (translations and permutations only)"}


@dataclass(frozen=True)
class EquivarianceReport:
    """Largest relative error over the trials, per transform and output (``None`` = not checked)."""

    rotation_energy: float | None
    rotation_forces: float | None
    reflection_energy: float | None
    reflection_forces: float | None
    translation_energy: float | None
    translation_forces: float | None
    atom_permutation_energy: float | None
    atom_permutation_forces: float | None
    graph_permutation_energy: float | None
    graph_permutation_forces: float | None

    def items(self) -> list[tuple[str, float]]:
        """``(name, error)`` for every checked identity."""
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None]

    def max(self) -> float:
        """The largest error over all checked identities."""
        return max((v for _, v in self.items()), default=0.0)

    def failures(self, tolerance: float) -> list[str]:
        """Names of identities whose error exceeds ``tolerance`` (NaN counts as a failure)."""
        return [k for k, v in self.items() if not v <= tolerance]

    def __str__(self) -> str:
        return "\n".join(f"{k:<26s} {v:.3e}" for k, v in self.items())


def default_tolerance(dtype: torch.dtype) -> float:
    """Default relative tolerance: 1e-10 for float64, 1e-4 for float32, 1e-2 for half precision."""
    if dtype == torch.float64:
        return 1e-10
    if dtype == torch.float32:
        return 1e-4
    return 1e-2


def _rel(a: Tensor, b: Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    if a.shape != b.shape:
        raise ValueError(f"model output shapes differ between transforms: {tuple(a.shape)} vs {tuple(b.shape)}")
    num = torch.linalg.vector_norm(a - b)
    den = torch.linalg.vector_norm(b).clamp_min(torch.finfo(torch.float64).tiny)
    return float(num / den)


def _outputs(model: Callable[[AtomicGraph], Any], graph: AtomicGraph) -> tuple[Tensor, Tensor]:
    out = model(graph)
    for name, shape in (("energy", (graph.n_graphs,)), ("forces", (graph.n_atoms, 3))):
        value = getattr(out, name, None)
        if not isinstance(value, Tensor):
            raise TypeError(f"model output must have a tensor attribute '{name}', got {type(out).__name__}")
        if tuple(value.shape) != shape:
            raise ValueError(f"model output {name} must have shape {list(shape)}, got {list(value.shape)}")
    return out.energy.detach(), out.forces.detach()


def _centroids(graph: AtomicGraph) -> Tensor:
    counts = graph.n_atoms_per_graph.clamp(min=1).to(graph.dtype)
    sums = graph.positions.new_zeros(graph.n_graphs, 3).index_add(0, graph.batch, graph.positions.detach())
    return sums / counts[:, None]


def _apply_orthogonal(graph: AtomicGraph, q: Tensor) -> AtomicGraph:
    """Apply one orthogonal matrix per molecule (``q [n_graphs, 3, 3]``) about each centroid."""
    c = _centroids(graph)[graph.batch]
    qa = q[graph.batch]
    pos = torch.einsum("nij,nj->ni", qa, graph.positions.detach() - c) + c
    return graph.with_positions(pos)


def _orthogonal_batch(kind: str, trial: int, n: int, generator: torch.Generator, dtype: torch.dtype, device: torch.device) -> Tensor:
    from nnip_scaling.geometry import random_reflection, random_rotation

    if kind == "reflection":
        return random_reflection(n, generator=generator, dtype=dtype, device=device)
    # trial 0: Haar random; trial 1: 90-degree rotations about x, y, z (cycled); trial 2: near identity
    if trial % 3 == 1:
        from nnip_scaling.geometry import rotation_90

        quarter = torch.stack([rotation_90(a, dtype=dtype, device=device) for a in range(3)])
        return quarter[torch.arange(n, device=device) % 3]
    if trial % 3 == 2:
        from nnip_scaling.geometry import rotation_about_axis

        axes = torch.randn(n, 3, generator=generator, dtype=dtype).to(device)
        return rotation_about_axis(axes, torch.full((n,), 1e-3, dtype=dtype, device=device))
    return random_rotation(n, generator=generator, dtype=dtype, device=device)


def _permute_atoms(graph: AtomicGraph, generator: torch.Generator) -> tuple[AtomicGraph, Tensor]:
    """Random permutation of atoms inside every molecule; returns (graph', perm) with x'[i] = x[perm[i]]."""
    ptr = graph.ptr.tolist()
    parts = [torch.randperm(hi - lo, generator=generator) + lo for lo, hi in zip(ptr[:-1], ptr[1:])]
    perm = (torch.cat(parts) if parts else torch.empty(0, dtype=torch.int64)).to(graph.device)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel(), device=graph.device)
    changes: dict[str, Any] = dict(
        positions=graph.positions.detach()[perm],
        atomic_numbers=graph.atomic_numbers[perm],
        forces=None if graph.forces is None else graph.forces[perm],
    )
    if graph.edge_index is not None:
        changes["edge_index"] = inv[graph.edge_index]
    return graph.replace(**changes), perm


def declared_group(model: Any) -> str | None:
    """The ``symmetry_group`` a model declares (``"O3"``, ``"SO3"``, ``"none"``), or ``None``."""
    group = getattr(model, "symmetry_group", None)
    if group is not None and group not in GROUPS:
        raise ValueError(f"{type(model).__name__}.symmetry_group must be one of {GROUPS}, got {group!r}")
    return group


def _resolve(model: Any, graph: AtomicGraph, group: str | None,
             checks: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
    """Validate the inputs; return the group to check and the checks to run."""
    if not isinstance(graph, AtomicGraph):
        raise TypeError(f"graph must be an AtomicGraph, got {type(graph).__name__}")
    if group is None:
        group = declared_group(model) or "SO3"
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS} (or None: the model's declared group), got {group!r}")
    if checks is None:
        checks = _GROUP_CHECKS[group]
    checks = tuple(checks)
    unknown = set(checks) - set(CHECKS)
    if unknown:
        raise ValueError(f"checks: unknown names {sorted(unknown)}; choose from {CHECKS}")
    if group == "O3" and "reflection" not in checks:
        checks = checks + ("reflection",)
    if graph.n_atoms == 0:
        raise ValueError("graph has no atoms: nothing to check")
    return group, checks


def equivariance_error(
    model: Callable[[AtomicGraph], Any],
    graph: AtomicGraph,
    *,
    group: Literal["SO3", "O3", "none"] | None = None,
    checks: Sequence[str] | None = None,
    n_trials: int = 3,
    generator: torch.Generator | None = None,
) -> EquivarianceReport:
    """Relative symmetry violations of ``model`` on ``graph`` (see module docstring).

    Args:
        model: callable ``graph -> output`` with ``.energy [n_graphs]`` and ``.forces [n_atoms, 3]``.
        graph: the input batch (with or without edges).
        group: ``"O3"`` (rotations and reflections), ``"SO3"`` (rotations) or ``"none"`` (no rotation
            checks); ``None`` (default): the model's declared ``symmetry_group``, else ``"SO3"``.
        checks: which identities to test, a subset of ``CHECKS``; default: those of the group
            (``"reflection"`` is always added for O3).
        n_trials: transforms per check; rotation trials cycle through a Haar-random rotation, 90-degree
            rotations about the axes, and a near-identity rotation (1e-3 rad).
        generator: source of randomness (default: a fresh generator seeded with 0, so results repeat).

    Returns:
        :class:`EquivarianceReport`, the largest error of each identity over the trials.
    """
    group, checks = _resolve(model, graph, group, checks)
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive int, got {n_trials!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    dtype, device = graph.dtype, graph.device
    e0, f0 = _outputs(model, graph)
    errors: dict[str, float] = {}

    def record(name: str, e: Tensor, e_ref: Tensor, f: Tensor, f_ref: Tensor) -> None:
        for out, val in (("energy", _rel(e, e_ref)), ("forces", _rel(f, f_ref))):
            key = f"{name}_{out}"
            prev = errors.get(key, 0.0)
            errors[key] = val if (math.isnan(val) or val > prev) else prev

    for trial in range(n_trials):
        for kind in ("rotation", "reflection"):
            if kind not in checks:
                continue
            q = _orthogonal_batch(kind, trial, graph.n_graphs, gen, dtype, device)
            e, f = _outputs(model, _apply_orthogonal(graph, q))
            record(kind, e, e0, f, torch.einsum("nij,nj->ni", q[graph.batch], f0))
        if "translation" in checks:
            shift = (torch.rand(graph.n_graphs, 3, generator=gen, dtype=dtype) * 20.0 - 10.0).to(device)
            e, f = _outputs(model, graph.with_positions(graph.positions.detach() + shift[graph.batch]))
            record("translation", e, e0, f, f0)
        if "atom_permutation" in checks:
            g2, perm = _permute_atoms(graph, gen)
            e, f = _outputs(model, g2)
            record("atom_permutation", e, e0, f, f0[perm])
        if "graph_permutation" in checks:
            order = torch.randperm(graph.n_graphs, generator=gen).tolist()
            pieces = graph.unbatch()
            e, f = _outputs(model, collate([pieces[i] for i in order]))
            ptr = graph.ptr.tolist()
            f_ref = torch.cat([f0[ptr[i] : ptr[i + 1]] for i in order]) if order else f0
            record("graph_permutation", e, e0[order], f, f_ref)
    return EquivarianceReport(**{f.name: errors.get(f.name) for f in fields(EquivarianceReport)})


def assert_equivariant(
    model: Callable[[AtomicGraph], Any],
    graph: AtomicGraph,
    *,
    group: Literal["SO3", "O3", "none"] | None = None,
    checks: Sequence[str] | None = None,
    tolerance: float | None = None,
    n_trials: int = 3,
    generator: torch.Generator | None = None,
) -> EquivarianceReport:
    """Assert energy invariance and force equivariance; return the report when it passes.

    Args:
        group: as in :func:`equivariance_error`; left out, the model's declared ``symmetry_group``
            (``build_model("spherical")`` declares ``"SO3"``, ``"cartesian"`` ``"O3"``).
        tolerance: largest allowed relative error; default by the graph's dtype
            (:func:`default_tolerance`: 1e-10 float64, 1e-4 float32).
        others: as in :func:`equivariance_error`.

    Raises:
        AssertionError: listing every violated identity with its error and the tolerance, and saying
            when the failed checks go beyond the group the model declares.
    """
    tol = default_tolerance(graph.dtype) if tolerance is None else float(tolerance)
    if not tol > 0:
        raise ValueError(f"tolerance must be positive, got {tolerance!r}")
    group, checks = _resolve(model, graph, group, checks)
    report = equivariance_error(model, graph, group=group, checks=checks, n_trials=n_trials, generator=generator)
    bad = report.failures(tol)
    if bad:
        lines = ", ".join(f"{k}={getattr(report, k):.3e}" for k in bad)
        raise AssertionError(f"model is not equivariant under {group} (tolerance {tol:.1e}): {lines}"
                             + _beyond_declared(model, bad))
    return report


def _beyond_declared(model: Any, failed: Sequence[str]) -> str:
    """A hint when the failed checks are ones the model does not promise (or might not)."""
    declared = declared_group(model)
    name = type(model).__name__
    promised = set(_GROUP_CHECKS[declared]) if declared is not None else None
    extra = [k for k in failed if promised is not None and k.rsplit("_", 1)[0] not in promised]
    if extra and len(extra) == len(failed):
        return (f". Note: {name} declares symmetry_group={declared!r}: it is {_GROUP_TEXT[declared]} by "
                f"design, so {', '.join(sorted({k.rsplit('_', 1)[0] for k in extra}))} checks are not "
                f"expected to hold. Check its declared group with group={declared!r} (or leave group out)")
    if extra:
        return (f". Note: {name} declares symmetry_group={declared!r}; of the failures, "
                f"{', '.join(extra)} are beyond that group, the others are real violations")
    if declared is None and any(k.startswith("reflection") for k in failed):
        return (". If the model is SO(3)-equivariant by design (no parity, like eSCN/eSEN), check "
                "group='SO3', or declare symmetry_group = 'SO3' on its class")
    return ""
