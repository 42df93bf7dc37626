"""Directional (GemNet-OC-style) family: O(3) symmetry, conservative forces, smoothness at the cutoff,
tiny and linear molecules, the table-6 ladder."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.models import build_model, ladder, ladder_comparison, paper_ladder
from nnip_scaling.testing import assert_equivariant
from nnip_scaling.testing.strategies import place_atoms

F64 = torch.float64
SMALL = {"cutoff": 5.0, "max_neighbors": 20, "quadruplet_cutoff": 4.0, "quadruplet_max_neighbors": 4}


def _model(width=8, depth=2, *, forces="direct", dtype=F64, seed=0, **kw):
    torch.manual_seed(seed)
    opts = {**SMALL, **kw}
    return build_model("directional", width, depth, forces=forces, dtype=dtype, **opts)


def _random_graph(n_mols=3, n_atoms=9, seed=0, dtype=F64):
    rng = np.random.default_rng(seed)
    mols = [(rng.integers(1, 10, size=n_atoms), place_atoms(n_atoms, min_distance=0.9, seed=seed + i, density=0.06))
            for i in range(n_mols)]
    return AtomicGraph.from_molecules(mols, dtype=dtype)


# ----------------------------------------------------------------------------- symmetry
@pytest.mark.parametrize("forces", ["direct", "conservative"])
def test_o3_translation_permutation_float64(graph64, forces):
    """Energy invariant, forces equivariant under rotations *and reflections* (the dihedral is
    parity-free), translations and permutations; symmetric built-in molecules and random ones."""
    model = _model(forces=forces)
    for g, trials in ((graph64, 2), (_random_graph(), 1)):
        report = assert_equivariant(model, g, group="O3", n_trials=trials)
        assert report.max() < 1e-10


def test_o3_with_the_paper_graph_settings(graph64):
    model = build_model("directional", 8, 2, cutoff=10.0, max_neighbors=50, quadruplet_cutoff=6.0,
                        quadruplet_max_neighbors=8, dtype=F64)
    assert_equivariant(model, graph64, group="O3", n_trials=1)


def test_float32_runs_and_is_equivariant(graph32):
    model = _model(16, 2, dtype=torch.float32)
    out = model(graph32)
    assert out.energy.dtype == torch.float32 and torch.isfinite(out.forces).all()
    assert_equivariant(model, graph32, group="O3", n_trials=1)


# ----------------------------------------------------------------------------- forces and smoothness
def test_conservative_forces_are_minus_the_energy_gradient():
    g = _random_graph(1, 7, seed=4)
    model = _model(forces="conservative").eval()
    out = model(g)
    eps = 1e-6  # the 128 Gaussians are 0.04 Å wide at a 5 Å cutoff: keep the step well below
    for atom, axis in ((0, 0), (3, 1), (6, 2)):
        shifts = []
        for s in (eps, -eps):
            pos = g.positions.clone()
            pos[atom, axis] += s
            shifts.append(float(model(AtomicGraph.from_arrays(pos, g.atomic_numbers)).energy.sum()))
        fd = -(shifts[0] - shifts[1]) / (2 * eps)
        assert abs(float(out.forces[atom, axis]) - fd) < 1e-7 * max(1.0, abs(fd))


@pytest.mark.parametrize("forces", ["direct", "conservative"])
def test_energy_and_forces_smooth_as_an_atom_leaves_the_cutoff(forces):
    """An atom leaving the cutoff of its only neighbour: energy and forces change by O(delta^3) across
    the boundary (envelope with p = 5), and beyond it the atom is exactly an isolated atom."""
    model = _model(forces=forces, cutoff=3.0, quadruplet_cutoff=3.0, max_neighbors=None).eval()
    base = torch.tensor([[0.0, 0.0, 0.0], [-1.1, 0.3, 0.0], [-1.5, -0.8, 0.5]], dtype=F64)
    z = torch.tensor([6, 8, 1, 7])
    u = torch.tensor([0.8, 0.36, 0.48], dtype=F64)  # unit vector away from atom 0, >= 3 Å from atoms 1, 2

    def run(r):
        pos = torch.cat([base, r * u[None]])
        out = model(AtomicGraph.from_arrays(pos, z))
        return out.energy.detach(), out.forces.detach()

    assert float((base[1:] - 2.9 * u).norm(dim=1).min()) > 3.0
    (e_in, f_in), (e_out, f_out) = run(3.0 - 1e-3), run(3.0 + 1e-3)
    assert abs(float(e_in - e_out)) < 1e-7
    assert float((f_in - f_out).abs().max()) < 1e-5
    # the derivative along the path vanishes at the cutoff too (finite differences inside)
    (e_a, _), (e_b, _) = run(3.0 - 2e-3), run(3.0 - 4e-3)
    assert abs(float(e_a - e_b)) < 1e-6
    # beyond the cutoff: exactly the separate pieces
    alone = model(AtomicGraph.from_arrays(base, z[:3])).energy + model(
        AtomicGraph.from_arrays(torch.zeros(1, 3, dtype=F64), z[3:])).energy
    assert torch.allclose(run(3.5)[0], alone.detach(), atol=1e-12)


# ----------------------------------------------------------------------------- bad input
TINY = {
    "atom": ([6], [[0.0, 0.0, 0.0]]),
    "dimer": ([1, 1], [[0.0, 0.0, 0.0], [0.74, 0.0, 0.0]]),
    "water": ([8, 1, 1], [[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]),
    "co2": ([8, 6, 8], [[-1.16, 0.0, 0.0], [0.0, 0.0, 0.0], [1.16, 0.0, 0.0]]),
    "acetylene": ([1, 6, 6, 1], [[-1.66, 0, 0], [-0.6, 0, 0], [0.6, 0, 0], [1.66, 0, 0]]),
    "collinear_same_side": ([6, 6, 6], [[0.0, 0, 0], [1.2, 0, 0], [2.5, 0, 0]]),
}


@pytest.mark.parametrize("forces", ["direct", "conservative"])
@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_and_linear_molecules_give_finite_outputs_and_gradients(name, forces):
    z, r = TINY[name]
    g = AtomicGraph.from_molecules([(z, r)], dtype=F64)
    model = _model(forces=forces).train()
    out = model(g)
    assert out.energy.shape == (1,) and out.forces.shape == (len(z), 3)
    assert torch.isfinite(out.energy).all() and torch.isfinite(out.forces).all()
    loss = out.energy.pow(2).sum() + out.forces.pow(2).sum()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    if name in ("co2", "acetylene", "collinear_same_side"):
        # forces of a linear molecule lie on its axis (equivariance under rotations about it)
        assert float(out.forces.detach()[:, 1:].abs().max()) < 1e-10
    if name == "atom":
        assert float(out.forces.detach().abs().max()) == 0.0


def test_a_batch_mixing_tiny_and_larger_molecules(graph64):
    tiny = AtomicGraph.from_molecules([(z, r) for z, r in TINY.values()], dtype=F64)
    from nnip_scaling.graph import collate

    g = collate([tiny, graph64])
    model = _model()
    out = model(g)
    assert torch.isfinite(out.energy).all() and torch.isfinite(out.forces).all()
    # each molecule's outputs do not depend on the others in the batch
    alone = model(graph64)
    assert torch.allclose(out.energy[tiny.n_graphs:], alone.energy, atol=1e-12)
    assert_equivariant(model, g, group="O3", n_trials=1)


def test_initial_outputs_are_order_one():
    """The explicit normalisation keeps activations O(1) at init at every width (without it they grew
    about 30x per block)."""
    g = _random_graph(2, 20, seed=1, dtype=torch.float32)
    for w in (16, 64):
        model = build_model("directional", w, 4, cutoff=10.0, max_neighbors=50)
        with torch.no_grad():
            out = model(g)
        per_atom = out.energy / g.n_atoms_per_graph
        assert float(per_atom.abs().max()) < 1.0 and float(out.forces.pow(2).mean().sqrt()) < 5.0


def test_config_errors():
    with pytest.raises(ValueError, match="quadruplet_cutoff"):
        build_model("directional", 8, 2, cutoff=5.0, quadruplet_cutoff=6.0)
    with pytest.raises(ValueError, match="quadruplet_max_neighbors"):
        build_model("directional", 8, 2, quadruplet_max_neighbors=0)
    with pytest.raises(TypeError, match="quadruplets"):
        build_model("directional", 8, 2, quadruplets="yes")
    with pytest.raises(ValueError, match="num_radial"):
        build_model("directional", 8, 2, num_radial=0)
    with pytest.raises(TypeError, match="unknown option"):
        build_model("directional", 8, 2, emb_size_atom=8)


def test_config_round_trip_and_state_dict():
    model = _model(forces="conservative", quadruplets=False)
    again = build_model(**dataclasses.asdict(model.config))
    again.load_state_dict(model.state_dict())
    g = _random_graph(1, 6, seed=2)
    assert torch.equal(model(g).energy, again(g).energy)


# ----------------------------------------------------------------------------- ladder (table 6)
def paper_table6(w: int) -> int:
    return 194 * w * w + 885 * w + 86_016


def test_table6_is_the_polynomial():
    assert all(paper_table6(r.width) == r.paper_params for r in paper_ladder("directional"))


@pytest.mark.parametrize("rung", range(12))
def test_without_quadruplets_and_83_elements_we_match_table6_exactly(rung):
    """Table 6 is GemNet-OC with fairchem's default interaction flags (triplets only) and 83 elements;
    our layer layout reproduces it to the unit."""
    cfg = ladder("directional")[rung]
    with torch.device("meta"):
        model = build_model(**{**dataclasses.asdict(cfg), "quadruplets": False, "max_z": 83})
    assert model.n_parameters == paper_table6(cfg.width)


def test_default_ladder_within_ten_percent_of_table6():
    rows = ladder_comparison("directional")
    assert len(rows) == 12
    for r in rows:
        w = r.config.width
        assert r.config.depth == 4 and r.config.cutoff == 10.0 and r.config.max_neighbors == 50
        # paper + the quadruplet interaction (4w^2 + 256w + 12,544) + 17 more elements (17w)
        assert r.params == paper_table6(w) + 4 * w * w + 273 * w + 12_544
        assert 0 < r.relative_difference < 0.10


def test_indexer_flops_are_negligible():
    from nnip_scaling.flops import count_flops

    g = _random_graph(2, 12, seed=3, dtype=torch.float32).with_edges(5.0, 20)
    model = build_model("directional", 16, 2, **SMALL)
    report = count_flops(model, g)
    assert report.by_module["representation.indexer"] < 1e-3 * report.forward
