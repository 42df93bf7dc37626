"""The energy is continuous as one atom crosses a cutoff, for every family and option that claims it
(and visibly jumps for the paper's forms, so the scan can fail).

A scan moves one atom in 1e-6 Å steps through the point where its distance to another atom equals the
radius in question; ``kink`` is the largest second difference of the energy along it: ~1e-12 eV for a
C^2 energy (curvature x step^2 plus float64 rounding), the size of the jump (~1e-2 eV) otherwise.
"""

from __future__ import annotations

import pytest
import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.data.molecules import builtin_molecules
from nnip_scaling.models import build_model
from nnip_scaling.models.smoothness import is_smooth
from nnip_scaling.testing.smoothness import crossing_distance, scan_crossing

SMOOTH_KINK = 1e-8  # eV; measured <= 3e-11 for every smooth case (1e-6 Å steps, float64)
JUMP_KINK = 1e-5  # eV; measured 9e-3 .. 3e-2 for the paper's mean, larger for binding caps
CUTOFF = 3.0


def _molecule() -> AtomicGraph:
    mol = next(m for m in builtin_molecules() if len(m.as_tuple()[0]) == 7)
    z, x = mol.as_tuple()
    return AtomicGraph.from_arrays(torch.tensor(x, dtype=torch.float64), torch.tensor(z))


def _crossing(graph: AtomicGraph, radius: float) -> dict:
    """The outermost atom moving radially outward and the first atom it leaves at ``radius``."""
    pos = graph.positions
    atom = int((pos - pos.mean(0)).norm(dim=1).argmax())
    direction = pos[atom] - pos.mean(0)
    times = {b: crossing_distance(pos, atom, direction, b, radius) for b in range(graph.n_atoms) if b != atom}
    partner = min(times, key=times.get)
    assert times[partner] < 2.0, "test geometry: no crossing within 2 Å"
    return dict(atom=atom, direction=direction, partner=partner, radius=radius)


def _model(kind: str, **options):
    torch.manual_seed(0)
    options.setdefault("forces", "conservative")
    options.setdefault("cutoff", CUTOFF)
    return build_model(kind, 8, 2, dtype=torch.float64, **options).eval()


SMOOTH_CASES = [
    ("unconstrained", dict(aggregation="soft_mean")),
    ("unconstrained", dict(aggregation="sum")),
    ("cartesian", dict(aggregation="soft_mean")),
    ("cartesian", dict(aggregation="sum")),
    ("cartesian", dict(aggregation="soft_mean", n_radial=0)),
    ("spherical", dict(aggregation="sum")),
    ("spherical", dict(aggregation="soft_mean")),
    ("directional", dict()),
    ("directional", dict(quadruplets=False)),
    ("directional", dict(forces="direct")),  # the paper's form is continuous where its caps do not bind
]


@pytest.mark.parametrize("kind, options", SMOOTH_CASES, ids=lambda x: str(x))
def test_energy_is_continuous_when_an_atom_crosses_the_cutoff(kind, options):
    graph = _molecule()
    scan = scan_crossing(_model(kind, **options), graph, **_crossing(graph, CUTOFF))
    assert scan.kink < SMOOTH_KINK


def test_directional_energy_is_continuous_at_the_quadruplet_cutoff():
    graph = _molecule()
    model = _model("directional", quadruplet_cutoff=2.5)
    scan = scan_crossing(model, graph, **_crossing(graph, 2.5))
    assert scan.kink < SMOOTH_KINK


def test_default_conservative_models_are_smooth():
    for kind in ("unconstrained", "cartesian", "spherical", "directional"):
        model = _model(kind)
        assert is_smooth(model.config), kind
        assert model.config.max_neighbors is None


@pytest.mark.parametrize("kind", ["unconstrained", "cartesian", "spherical"])
def test_paper_mean_jumps_at_the_cutoff(kind):
    graph = _molecule()
    scan = scan_crossing(_model(kind, aggregation="mean"), graph, **_crossing(graph, CUTOFF))
    assert scan.kink > JUMP_KINK
    assert scan.step_change == pytest.approx(scan.kink, rel=0.01)  # one jump, not a steep slope


def _rank_swap(offset: float = 0.0) -> tuple[AtomicGraph, dict]:
    """Atom 3 (H) moves away from atom 0 along +z and passes atom 1's (O) distance, 1.5 Å, at z = 1.5:
    with a cap of 2 neighbours, atom 0 swaps atom 3 for atom 1 there (at ``1.5 + offset`` Å for a cap
    that keeps near-ties within ``offset``)."""
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.2]], dtype=torch.float64)
    graph = AtomicGraph.from_arrays(pos, torch.tensor([6, 8, 1, 1]))
    return graph, dict(atom=3, direction=torch.tensor([0.0, 0.0, 1.0]), partner=0, radius=1.5 + offset)


@pytest.mark.parametrize(
    "kind, options, offset",
    [
        ("unconstrained", dict(max_neighbors=2), 0.0),
        ("cartesian", dict(max_neighbors=2), 0.0),
        ("spherical", dict(max_neighbors=2), 0.0),
        ("directional", dict(max_neighbors=2), 0.0),
        # the quadruplet graph keeps near-ties within 1e-4 Å of the cap (geometry.angles.select_edges):
        # the swapped-out neighbour leaves 1e-4 Å after the swap
        ("directional", dict(quadruplet_max_neighbors=2), 1e-4),
    ],
    ids=lambda x: str(x),
)
def test_a_binding_neighbour_cap_jumps_and_no_cap_does_not(kind, options, offset):
    graph, swap = _rank_swap(offset)
    capped = scan_crossing(_model(kind, cutoff=4.0, **options), graph, **swap)
    free = scan_crossing(_model(kind, cutoff=4.0), graph, **swap)
    assert capped.kink > JUMP_KINK
    assert free.kink < SMOOTH_KINK
