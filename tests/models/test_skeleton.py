"""The shared model skeleton: build_model, configs, ModelOutput, edges, forces modes, errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.data.molecules import builtin_molecules
from nnip_scaling.models import (
    FAMILIES,
    ModelOutput,
    build_model,
    family_class,
    ladder,
    mup_learning_rate,
    paper_ladder,
)
from nnip_scaling.models.config import ModelConfig


def _graph(n=3, dtype=torch.float64):
    mols = builtin_molecules()[:n]
    return AtomicGraph.from_molecules([m.as_tuple() for m in mols], dtype=dtype)


def test_output_shapes_and_type():
    g = _graph(3, torch.float32)
    model = build_model("unconstrained", 8, 2)
    out = model(g)
    assert isinstance(out, ModelOutput)
    assert out.energy.shape == (3,)
    assert out.forces.shape == (g.n_atoms, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.energy = out.energy  # type: ignore[misc]


def test_config_round_trip_and_state_dict():
    g = _graph()
    model = build_model("unconstrained", 12, 2, dtype=torch.float64, cutoff=5.0, max_neighbors=10)
    assert model.config.dtype == "float64"
    cfg = dataclasses.asdict(model.config)
    assert cfg["kind"] == "unconstrained" and cfg["cutoff"] == 5.0 and cfg["max_neighbors"] == 10
    other = build_model(**cfg)
    assert other.config == model.config
    other.load_state_dict(model.state_dict())
    a, b = model(g), other(g)
    assert torch.equal(a.energy, b.energy) and torch.equal(a.forces, b.forces)


def test_edges_built_with_config_and_graph_not_mutated():
    g = _graph()
    model = build_model("unconstrained", 8, 2, dtype="float64", cutoff=4.0, max_neighbors=5)
    out1 = model(g)
    assert not g.has_edges
    out2 = model(g.with_edges(4.0, 5))
    assert torch.allclose(out1.forces, out2.forces, rtol=0, atol=1e-12)
    # edges of another radius are rebuilt with the config's radius
    out3 = model(g.with_edges(2.0, 3))
    assert torch.allclose(out1.energy, out3.energy, rtol=0, atol=1e-12)
    # hand-built edges (unknown cutoff) are used as given: a different result
    short = g.with_edges(2.0, 3).replace(cutoff=None, max_neighbors=None)
    assert not torch.allclose(model(short).energy, out1.energy)


def test_conservative_forces_are_minus_gradient():
    g = _graph(2)
    model = build_model("unconstrained", 8, 2, dtype="float64", forces="conservative")
    assert model.force_head is None
    model.eval()
    out = model(g)
    assert not out.energy.requires_grad and not out.forces.requires_grad
    # finite differences of the energy w.r.t. one coordinate
    i, k, h = 3, 1, 1e-6
    gp = g.with_edges(6.0, 30)
    plus = gp.positions.clone()
    plus[i, k] += h
    minus = gp.positions.clone()
    minus[i, k] -= h
    e_p = model(gp.with_positions(plus)).energy.sum()
    e_m = model(gp.with_positions(minus)).energy.sum()
    assert torch.allclose(out.forces[i, k], -(e_p - e_m) / (2 * h), rtol=1e-6, atol=1e-8)
    with torch.no_grad():
        assert torch.equal(model(g).forces, out.forces)


def test_conservative_training_create_graph():
    g = _graph(2)
    model = build_model("unconstrained", 8, 2, dtype="float64", forces="conservative")
    model.train()
    out = model(g)
    assert out.forces.requires_grad
    out.forces.pow(2).sum().backward()
    # every parameter but the energy readout's bias (a constant shift of E) moves the forces
    no_grad = {n for n, p in model.named_parameters() if p.grad is None}
    assert no_grad == {"energy_head.mlp.layers.1.bias"}
    assert all(float(p.grad.abs().sum()) > 0 for n, p in model.named_parameters() if n not in no_grad)
    assert not g.positions.requires_grad


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(kind="nope", width=8, depth=2), "kind"),
        (dict(kind="unconstrained", width=0, depth=2), "width"),
        (dict(kind="unconstrained", width=8, depth=0), "depth"),
        (dict(kind="unconstrained", width=8, depth=2, cutoff=-1.0), "cutoff"),
        (dict(kind="unconstrained", width=8, depth=2, max_neighbors=0), "max_neighbors"),
        (dict(kind="unconstrained", width=8, depth=2, max_z=119), "max_z"),
        (dict(kind="unconstrained", width=8, depth=2, forces="both"), "forces"),
        (dict(kind="unconstrained", width=8, depth=2, dtype="int8"), "dtype"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(**kwargs)


def test_bad_types_and_unknown_option():
    with pytest.raises(TypeError, match="width"):
        build_model("unconstrained", 8.0, 2)
    with pytest.raises(TypeError, match="unknown option"):
        build_model("unconstrained", 8, 2, vector_channels=3)


def test_bad_graph_inputs():
    model = build_model("unconstrained", 8, 2, max_z=8)
    g = _graph(3, torch.float32)
    assert int(g.atomic_numbers.max()) > 8
    with pytest.raises(ValueError, match="max_z"):
        model(g)
    with pytest.raises(TypeError, match="AtomicGraph"):
        model(g.positions)
    ok = AtomicGraph.from_molecules([([6, 1], [[0, 0, 0], [1.1, 0, 0]])])
    with pytest.raises(TypeError, match="dtype"):
        model(ok.to(dtype=torch.float64))


def test_isolated_atom_and_empty_batch_finite():
    g = AtomicGraph.from_molecules(
        [([8, 1, 1], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]), ([6], [[50.0, 0, 0]])], dtype=torch.float64
    )
    for forces in ("direct", "conservative"):
        model = build_model("unconstrained", 8, 2, dtype="float64", forces=forces)
        out = model(g)
        assert torch.isfinite(out.energy).all() and torch.isfinite(out.forces).all()
        # the lone atom's energy does not depend on the water molecule
        alone = model(AtomicGraph.from_molecules([([6], [[50.0, 0, 0]])], dtype=torch.float64))
        assert torch.allclose(alone.energy[0], out.energy[1], rtol=0, atol=1e-12)


def test_family_dispatch_is_static():
    assert set(FAMILIES) == {"unconstrained", "directional", "cartesian", "spherical"}
    cls = family_class("unconstrained")
    assert issubclass(cls.config_class, ModelConfig)
    with pytest.raises(ValueError, match="kind"):
        family_class("transformer")


def test_ladder_configs_follow_paper_tables():
    cfgs = ladder("unconstrained")
    rungs = paper_ladder("unconstrained")
    assert [c.width for c in cfgs] == [r.width for r in rungs]
    assert all(c.depth == 5 and c.cutoff == 6.0 and c.max_neighbors == 30 for c in cfgs)
    assert paper_ladder("directional")[0].cutoff == 10.0


def test_mup_learning_rate():
    assert mup_learning_rate(1e-3, 64, 128) == pytest.approx(5e-4)
    assert mup_learning_rate(1e-3, 64, 64) == pytest.approx(1e-3)
    assert mup_learning_rate(2e-3, 100, 25) == pytest.approx(8e-3)
    for bad in (dict(base_lr=0.0, base_width=64, width=64), dict(base_lr=1e-3, base_width=0, width=64),
                dict(base_lr=1e-3, base_width=64, width=float("nan"))):
        with pytest.raises(ValueError):
            mup_learning_rate(**bad)


@pytest.mark.parametrize("kind", ["unconstrained", "cartesian"])
def test_empty_batch_gives_zero_energies(kind):
    g = AtomicGraph.from_arrays(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64), n_graphs=2)
    for forces in ("direct", "conservative"):
        out = build_model(kind, 4, 2, forces=forces).eval()(g)
        assert torch.equal(out.energy, torch.zeros(2)) and out.forces.shape == (0, 3)
