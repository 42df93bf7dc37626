"""The spherical (eSEN-style) family: exact equivariance, edge-frame roll, +-y edges, ladder, config."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.data.molecules import builtin_molecules
from nnip_scaling.models import build_model, ladder, ladder_comparison, paper_ladder
from nnip_scaling.models.spherical import SphericalConfig, parameter_count
from nnip_scaling.testing import assert_equivariant, equivariance_error

F64 = torch.float64


def _graph(names=("H2O", "NH3", "CH3OH"), dtype=F64):
    mols = {m.name: m for m in builtin_molecules()}
    return AtomicGraph.from_molecules([mols[n].as_tuple() for n in names], dtype=dtype)


def _model(l_max, forces="direct", seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("width", 3)
    kw.setdefault("depth", 2)
    kw.setdefault("hidden_channels", 4)
    kw.setdefault("num_radial", 6)
    return build_model("spherical", l_max=l_max, forces=forces, dtype=F64, **kw)


@pytest.mark.parametrize("forces", ["direct", "conservative"])
@pytest.mark.parametrize("l_max", [1, 2, 4, 6])
def test_exactly_equivariant_float64(l_max, forces):
    """SO(3) + translation + permutation to <= 1e-10 relative (m_max = min(2, l_max) < l_max for 4, 6)."""
    model = _model(l_max, forces)
    assert model.config.m_max == min(2, l_max)
    g = _graph()
    report = assert_equivariant(model, g, tolerance=1e-10, n_trials=2)
    assert report.rotation_forces is not None and report.atom_permutation_forces is not None
    out = model(g)
    # non-trivial outputs: the check compared something
    assert out.forces.abs().max() > 1e-6 and out.energy.abs().max() > 1e-6


@pytest.mark.parametrize("l_max,m_max", [(2, 0), (3, 1), (3, 3)])
def test_any_m_truncation_is_exactly_equivariant(l_max, m_max):
    model = _model(l_max, m_max=m_max, aggregation="mean")
    assert_equivariant(model, _graph(("H2O", "CH4")), tolerance=1e-10, n_trials=1, checks=("rotation",))


def test_equivariance_check_detects_a_broken_force_head():
    """The equivariance test can fail: reading the l=1 components in the wrong order breaks it."""
    model = _model(2)

    class Swapped(torch.nn.Module):
        def __init__(self, head):
            super().__init__()
            self.head = head

        def forward(self, state, graph=None):
            return self.head(state, graph)[:, [1, 2, 0]]  # (y, z, x) instead of (x, y, z)

    model.force_head = Swapped(model.force_head)
    report = equivariance_error(model, _graph(), checks=("rotation",), n_trials=1)
    assert report.rotation_forces > 1e-3 and report.rotation_energy < 1e-10


def test_random_edge_roll_does_not_change_outputs():
    base = _model(4)
    rolled = build_model(**{**dataclasses.asdict(base.config), "edge_roll_seed": 123})
    rolled.load_state_dict(base.state_dict())
    g = _graph()
    a = base(g)
    gen_state = rolled.representation.roll_generator.get_state().clone()
    b1, b2 = rolled(g), rolled(g)
    # a fresh roll was drawn in each pass
    assert not torch.equal(rolled.representation.roll_generator.get_state(), gen_state)
    assert not torch.equal(b1.forces, b2.forces)  # different frames: different rounding
    for b in (b1, b2):
        torch.testing.assert_close(b.energy, a.energy, rtol=1e-10, atol=0)
        assert (b.forces - a.forces).norm() / a.forces.norm() < 1e-10


def _y_axis_graph():
    """Atoms stacked exactly along y (edges along +y and -y) next to a generic molecule."""
    line = ([6, 1, 8], [[0.0, 0.0, 0.0], [0.0, 1.1, 0.0], [0.0, -1.3, 0.0]])
    water = ([8, 1, 1], [[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    return AtomicGraph.from_molecules([line, water], dtype=F64)


@pytest.mark.parametrize("forces", ["direct", "conservative"])
def test_edges_along_y_give_finite_forces_and_gradients(forces):
    model = _model(4, forces)
    g = _y_axis_graph().with_edges(6.0, 30)
    assert (g.edge_vec[:, [0, 2]].abs().sum(-1) == 0).any()  # some edges are exactly along +-y
    out = model(g)
    assert torch.isfinite(out.energy).all() and torch.isfinite(out.forces).all()
    # gradients w.r.t. the parameters (training) are finite too
    model.train()
    out = model(g)
    loss = out.energy.pow(2).sum() + out.forces.pow(2).sum()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_conservative_forces_match_finite_differences_along_y():
    """F = -dE/dx, also for the atoms whose edges lie exactly along +-y (the frame is smooth there)."""
    model = _model(2, "conservative", depth=1)
    g = _y_axis_graph()
    forces = model(g).forces.detach()
    eps = 1e-6
    for atom in (0, 1, 2):
        for k in range(3):
            shift = torch.zeros_like(g.positions)
            shift[atom, k] = eps
            ep = model(g.with_positions(g.positions + shift)).energy.detach().sum()
            em = model(g.with_positions(g.positions - shift)).energy.detach().sum()
            fd = -(ep - em) / (2 * eps)
            assert abs(float(fd - forces[atom, k])) < 1e-7 * max(1.0, float(forces.abs().max()))


def test_energy_gradcheck_wrt_positions():
    model = _model(2, "conservative", depth=1, width=2)
    g = _y_axis_graph()
    edges = g.with_edges(6.0, 30)

    def energy(pos):
        h = g.with_positions(pos)
        h = h.replace(edge_index=edges.edge_index, edge_vec=pos[edges.edge_index[0]] - pos[edges.edge_index[1]])
        return model._energy(h)[0]

    pos = g.positions.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(energy, (pos,), eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)


def test_float32_and_isolated_atom():
    torch.manual_seed(0)
    model = build_model("spherical", 4, 2, num_radial=8)
    g = AtomicGraph.from_molecules(
        [([8, 1, 1], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]), ([6], [[50.0, 0, 0]])]
    )
    out = model(g)
    assert out.energy.dtype == torch.float32 and out.forces.shape == (4, 3)
    assert torch.isfinite(out.energy).all() and torch.isfinite(out.forces).all()
    assert torch.equal(out.forces[3], torch.zeros(3))  # no neighbours, no l=1 features
    report = equivariance_error(model, g, n_trials=1)
    assert report.max() < 1e-4


@pytest.mark.parametrize("forces", ["direct", "conservative"])
def test_graph_without_edges(forces):
    """A lone atom (zero edges in the whole batch): finite energy, zero forces, finite gradients."""
    model = _model(2, forces, edge_roll_seed=0)
    g = AtomicGraph.from_molecules([([6], [[0.0, 0.0, 0.0]])], dtype=F64)
    out = model(g)
    assert torch.isfinite(out.energy).all()
    assert torch.equal(out.forces.detach().abs(), torch.zeros(1, 3, dtype=F64))
    (out.energy.sum() + out.forces.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_config_round_trip_and_validation():
    model = _model(3, m_max=1, aggregation="mean", edge_channels=5)
    cfg = dataclasses.asdict(model.config)
    assert cfg["m_max"] == 1 and cfg["edge_channels"] == 5 and cfg["aggregation"] == "mean"
    other = build_model(**cfg)
    other.load_state_dict(model.state_dict())
    g = _graph()
    assert torch.equal(other(g).forces, model(g).forces)
    # defaults resolved from width / l_max
    c = SphericalConfig(width=7, depth=1, l_max=1)
    assert c.m_max == 1 and c.edge_channels == 7
    for kwargs, err, match in [
        (dict(l_max=7), ValueError, "l_max"),
        (dict(l_max=0), ValueError, "l_max"),
        (dict(l_max=2, m_max=3), ValueError, "m_max"),
        (dict(aggregation="max"), ValueError, "aggregation"),
        (dict(avg_num_neighbors=0.0), ValueError, "avg_num_neighbors"),
        (dict(edge_roll_seed=-1), ValueError, "edge_roll_seed"),
        (dict(hidden_channels=2.5), TypeError, "hidden_channels"),
        (dict(edge_roll_seed=True), TypeError, "edge_roll_seed"),
    ]:
        with pytest.raises(err, match=match):
            build_model("spherical", 4, 2, **kwargs)


def test_parameter_count_closed_form():
    for kw in [dict(width=3, depth=2, l_max=1, m_max=1), dict(width=5, depth=3, l_max=3, m_max=2, edge_channels=4),
               dict(width=4, depth=1, l_max=6, m_max=6, num_radial=10, hidden_channels=8)]:
        for forces in ("direct", "conservative"):
            with torch.device("meta"):
                model = build_model("spherical", forces=forces, **kw)
            assert model.n_parameters == parameter_count(forces=forces, **kw)


def test_ladder_within_ten_percent_of_table_5():
    cfgs = ladder("spherical")
    assert [c.width for c in cfgs] == [4, 8, 10, 12, 16, 20, 32]
    assert all((c.depth, c.l_max, c.m_max, c.hidden_channels) == (12, 4, 2, 32) for c in cfgs)
    rows = ladder_comparison("spherical")
    assert [r.paper_params for r in rows] == [r.paper_params for r in paper_ladder("spherical")]
    for r in rows:
        assert abs(r.relative_difference) < 0.10, (r.config.width, r.params, r.paper_params)
        assert r.params == parameter_count(r.config.width, 12)
    # the quadratic term matches the paper's exactly: table 5 fits 332 C^2 + 105180 C + 15746
    quad = [parameter_count(c, 12) for c in (1, 2, 3)]
    assert quad[2] - 2 * quad[1] + quad[0] == 2 * 332


def test_mean_and_sum_aggregation_differ_but_both_run():
    g = _graph()
    a = _model(2, aggregation="sum")(g)
    b = _model(2, aggregation="mean")(g)
    assert not torch.allclose(a.energy, b.energy)
    assert math.isfinite(float(a.energy.detach().sum())) and math.isfinite(float(b.energy.detach().sum()))
