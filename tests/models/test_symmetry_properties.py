"""Property tests: every family respects its documented group on generated molecules (float64).

Molecules come from :mod:`nnip_scaling.testing.strategies` (random atoms, no two closer than 0.7 Å);
rotations from its ``rotations()`` strategy (Haar, quarter turns, near identity), permutations from
hypothesis. Each family is checked against the group it declares (``symmetry_group``): ``O3`` adds a
reflection, ``none`` checks translations and permutations only. The graph carries its edges, so the
transformed graphs use the same neighbour set (rotations do not change it; permutations relabel it).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnip_scaling import AtomicGraph
from nnip_scaling.models import build_model
from nnip_scaling.testing.strategies import batches, rotations

FAMILIES = ("unconstrained", "directional", "cartesian", "spherical")
TOL = 1e-10  # relative, float64 (the kit's default)


def _model(kind: str, forces: str):
    torch.manual_seed(0)
    return build_model(kind, width=4, depth=2, forces=forces, dtype="float64").eval()


MODELS = {(k, f): _model(k, f) for k in FAMILIES for f in ("direct", "conservative")}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _rotate(g: AtomicGraph, q: torch.Tensor) -> AtomicGraph:
    centre = g.positions.mean(0)
    return g.with_positions((g.positions - centre) @ q.T + centre)


def _permute(g: AtomicGraph, perm: torch.Tensor) -> AtomicGraph:
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    return g.replace(positions=g.positions[perm], atomic_numbers=g.atomic_numbers[perm],
                     batch=g.batch[perm], edge_index=inv[g.edge_index])


settings_ = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("forces", ["direct", "conservative"])
@pytest.mark.parametrize("kind", FAMILIES)
@settings_
@given(graph=batches(max_graphs=1, min_atoms=2, max_atoms=10, cutoff=6.0, max_neighbors=30),
       q=rotations(), mirror=st.booleans(), data=st.data())
def test_family_respects_its_group(kind, forces, graph, q, mirror, data):
    model = MODELS[(kind, forces)]
    out = model(graph)
    assert torch.isfinite(out.energy).all() and torch.isfinite(out.forces).all()

    # permutation of the atoms: energy invariant, forces permuted
    perm = torch.tensor(data.draw(st.permutations(range(graph.n_atoms))), dtype=torch.int64)
    p = model(_permute(graph, perm))
    assert _rel(p.energy, out.energy) <= TOL
    assert _rel(p.forces, out.forces[perm]) <= TOL

    # translation: invariant
    shift = torch.tensor(data.draw(st.tuples(*[st.floats(-20, 20)] * 3)), dtype=torch.float64)
    t = model(graph.with_positions(graph.positions + shift))
    assert _rel(t.energy, out.energy) <= TOL and _rel(t.forces, out.forces) <= TOL

    group = model.symmetry_group
    if group == "none":
        return
    if mirror and group == "O3":
        q = -q  # an improper orthogonal matrix: rotation times inversion
    r = model(_rotate(graph, q))
    assert _rel(r.energy, out.energy) <= TOL
    assert _rel(r.forces, out.forces @ q.T) <= TOL
