"""Tests of nnip_scaling.flops.estimate_kappa with small local models of known FLOP counts."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn as nn

from nnip_scaling.flops import (
    KappaDriftWarning,
    KappaEstimate,
    count_flops,
    estimate_kappa,
    probe_graphs,
)
from nnip_scaling.graph import AtomicGraph

MAX_Z = 18  # the built-in molecules hold H, C, N, O, F, S, Cl


@dataclass(frozen=True)
class _Config:
    cutoff: float = 3.0
    max_neighbors: int | None = 6


def _seeded(fn, seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return fn()


class _TinyMPNN(nn.Module):
    """Embedding, one message-passing layer (gather -> linear -> index_add), per-atom MLP, sum.

    Forward FLOPs with ``n`` atoms, ``E`` edges, width ``w``::

        E(2w² + w)  message Linear (addmm + bias)      E·w   index_add
        n·w         residual add                       n(2w² + w) + n·w + n(2w + 1)   MLP
        n           per-graph energy sum (index_add)
    """

    def __init__(self, width: int, *, with_config: bool = True) -> None:
        super().__init__()
        self.emb = nn.Embedding(MAX_Z + 1, width)
        self.msg = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 1))
        self._cfg = _Config()
        if with_config:
            self.config = self._cfg

    def forward(self, graph: AtomicGraph) -> torch.Tensor:
        if graph.edge_index is None:  # a model without config builds its own edges
            graph = graph.with_edges(self._cfg.cutoff, self._cfg.max_neighbors)
        h = self.emb(graph.atomic_numbers)
        src, dst = graph.edge_index
        h = h + torch.zeros_like(h).index_add_(0, dst, self.msg(h[src]))
        e = self.mlp(h).squeeze(-1)
        return e.new_zeros(graph.n_graphs).index_add(0, graph.batch, e)

    @staticmethod
    def flops(n: int, e: int, w: int) -> int:
        return e * (2 * w * w + w) + e * w + n * w + n * (2 * w * w + w) + n * w + n * (2 * w + 1) + n

    @staticmethod
    def n_params(w: int) -> int:
        return (MAX_Z + 1) * w + (w * w + w) + (w * w + w) + (w + 1)


class _LinearChain(nn.Module):
    """Per-atom linear chain without bias: C = 2·N·D + D (the energy sum), so κ = 2 + 1/N."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, width, bias=False), nn.Linear(width, width, bias=False),
                                 nn.Linear(width, 1, bias=False))

    def forward(self, graph: AtomicGraph) -> torch.Tensor:
        e = self.net(graph.positions).squeeze(-1)
        return e.new_zeros(graph.n_graphs).index_add(0, graph.batch, e)


def _expected_kappa(model_width: int, graphs: list[AtomicGraph]) -> tuple[float, float]:
    """(flops per atom through the origin, κ) from the known formula of _TinyMPNN."""
    cfg = _Config()
    d, c = [], []
    for g in graphs:
        ge = g.with_edges(cfg.cutoff, cfg.max_neighbors)
        d.append(ge.n_atoms)
        c.append(_TinyMPNN.flops(ge.n_atoms, ge.n_edges, model_width))
    d, c = np.array(d, float), np.array(c, float)
    per_atom = float(d @ c / (d @ d))
    return per_atom, per_atom / _TinyMPNN.n_params(model_width)


def test_probe_graphs_nested_and_seeded():
    gs = probe_graphs((3, 10, 90))
    assert [g.n_graphs for g in gs] == [3, 10, 90]
    assert all(not g.has_edges for g in gs)
    # nested: the first batch's atoms are a prefix of the second's
    n0 = gs[0].n_atoms
    assert torch.equal(gs[1].atomic_numbers[:n0], gs[0].atomic_numbers)
    again = probe_graphs((10,), seed=0)[0]
    other = probe_graphs((10,), seed=1)[0]
    assert torch.equal(again.positions, gs[1].positions)
    assert not torch.equal(other.atomic_numbers, again.atomic_numbers) or \
        not torch.equal(other.positions, again.positions)
    assert probe_graphs((5,), dtype=torch.float64)[0].dtype == torch.float64


def test_single_model_exact():
    w = 8
    model = _seeded(lambda: _TinyMPNN(w))
    assert sum(p.numel() for p in model.parameters()) == _TinyMPNN.n_params(w)
    est = estimate_kappa(model, batch_sizes=(5, 20, 60))
    assert isinstance(est, KappaEstimate)
    per_atom, kappa = _expected_kappa(w, probe_graphs((5, 20, 60)))
    assert est.kappa == pytest.approx(kappa, rel=1e-12)
    assert len(est.per_size) == 1
    row = est.per_size[0]
    assert row.width is None and row.n_params == _TinyMPNN.n_params(w)
    assert row.flops_per_atom == pytest.approx(per_atom, rel=1e-12)
    assert row.kappa == pytest.approx(kappa, rel=1e-12)
    # every point is the known formula; edges were built with the config (not counted)
    for p in est.points:
        assert p.flops == _TinyMPNN.flops(p.n_atoms, p.n_edges, w)
    assert est.mean_neighbors == pytest.approx(sum(p.n_edges for p in est.points) /
                                               sum(p.n_atoms for p in est.points))
    assert est.drift == 0.0 and est.warning is None and est.loglog_slope is None
    assert dict(est.uncounted) == {}
    assert "kappa" in str(est)


def test_graph_construction_excluded_only_when_model_has_config():
    w = 8
    with_cfg = _seeded(lambda: _TinyMPNN(w))
    no_cfg = _seeded(lambda: _TinyMPNN(w, with_config=False))
    a = estimate_kappa(with_cfg, batch_sizes=(10,))
    b = estimate_kappa(no_cfg, batch_sizes=(10,))
    # without a config the model builds its neighbour list inside forward: that is counted
    assert b.points[0].flops > a.points[0].flops
    assert b.mean_neighbors is None and a.mean_neighbors is not None
    # the same graphs with edges built beforehand: the model uses them, nothing extra counted
    g = probe_graphs((10,))[0].with_edges(3.0, 6)
    c = estimate_kappa(no_cfg, g)
    assert c.points[0].flops == a.points[0].flops
    assert c.points[0].n_edges == g.n_edges


def test_factory_exact_and_drift_warning():
    widths = [2, 8, 64]
    with pytest.warns(KappaDriftWarning, match="per-size table"):
        est = estimate_kappa(lambda w: _seeded(lambda: _TinyMPNN(w)), widths=widths,
                             batch_sizes=(10, 40))
    graphs = probe_graphs((10, 40))
    assert [r.width for r in est.per_size] == widths
    for r in est.per_size:
        _, k = _expected_kappa(r.width, graphs)
        assert r.kappa == pytest.approx(k, rel=1e-12)
    kappas = [r.kappa for r in est.per_size]
    assert est.drift == pytest.approx(max(kappas) / min(kappas) - 1)
    assert est.warning is not None and est.drift > 0.2
    # fit through the origin over all points
    x = np.array([p.n_params * p.n_atoms for p in est.points], float)
    c = np.array([p.flops for p in est.points], float)
    assert est.kappa == pytest.approx(x @ c / (x @ x), rel=1e-12)
    slope, icpt = est.kappa_intercept_fit
    ref_slope, ref_icpt = np.polyfit(x, c, 1)
    assert slope == pytest.approx(ref_slope) and icpt == pytest.approx(ref_icpt, rel=1e-6, abs=1e-3)
    assert len(est.points) == len(widths) * 2
    # the embedding table (19·w parameters, 0 FLOPs: a lookup) dominates N at small width, so
    # small models look cheap per parameter and C/D grows faster than N
    ln_n = np.log([_TinyMPNN.n_params(w) for w in widths])
    ln_c = np.log([_expected_kappa(w, graphs)[0] for w in widths])
    assert est.loglog_slope == pytest.approx(np.polyfit(ln_n, ln_c, 1)[0], rel=1e-9)
    assert est.loglog_slope > 1.0 and kappas[0] < kappas[-1]


def test_linear_chain_kappa_is_two_and_does_not_warn():
    widths = [4, 16, 64]
    with warnings.catch_warnings():
        warnings.simplefilter("error", KappaDriftWarning)
        est = estimate_kappa(lambda w: _seeded(lambda: _LinearChain(w)), widths=widths,
                             batch_sizes=(10, 30))
    for r in est.per_size:
        n = r.n_params
        assert n == 3 * r.width + r.width ** 2 + r.width
        assert r.kappa == pytest.approx(2 + 1 / n, rel=1e-12)
    assert est.warning is None and est.drift < 0.2
    assert est.loglog_slope == pytest.approx(1.0, abs=0.01)
    assert est.mean_neighbors is None  # no config, no edges
    assert est.r_squared == pytest.approx(1.0, abs=1e-4)


def test_single_size_intercept_fit_is_proportional():
    model = _seeded(lambda: _LinearChain(16))
    est = estimate_kappa(model, batch_sizes=(5, 30, 90))
    n = est.per_size[0].n_params
    slope, icpt = est.kappa_intercept_fit
    assert slope == pytest.approx(2 + 1 / n, rel=1e-9)
    assert abs(icpt) < 1e-6 * max(p.flops for p in est.points)
    one = estimate_kappa(model, batch_sizes=(7,))
    assert one.kappa_intercept_fit is None  # one point: no line (was (nan, nan), issue 14)
    assert "no fit with intercept" in one.table() and "nan" not in one.table()


def test_float64_model_matches_float32():
    w = 6
    m32 = _seeded(lambda: _TinyMPNN(w))
    m64 = _seeded(lambda: _TinyMPNN(w)).double()
    a = estimate_kappa(m32, batch_sizes=(12,))
    b = estimate_kappa(m64, batch_sizes=(12,))
    assert a.kappa == b.kappa and a.points == b.points
    g = probe_graphs((12,))[0]  # float32 graphs are converted to the model's dtype
    assert estimate_kappa(m64, [g]).points == b.points


def test_graphs_argument_forms():
    model = _seeded(lambda: _TinyMPNN(4))
    gs = probe_graphs((4, 9))
    single = estimate_kappa(model, gs[1])
    both = estimate_kappa(model, gs)
    assert len(single.points) == 1 and len(both.points) == 2
    assert single.points[0] == both.points[1]


def test_bad_input():
    model = _TinyMPNN(4)
    factory = lambda w: _TinyMPNN(w)  # noqa: E731
    with pytest.raises(TypeError, match="widths"):
        estimate_kappa(factory)
    with pytest.raises(TypeError, match="factory"):
        estimate_kappa(model, widths=[4])
    with pytest.raises(ValueError, match="widths"):
        estimate_kappa(factory, widths=[])
    with pytest.raises(ValueError, match="distinct"):
        estimate_kappa(factory, widths=[4, 4])
    with pytest.raises(ValueError, match="widths"):
        estimate_kappa(factory, widths=[0])
    with pytest.raises(ValueError, match="batch_sizes"):
        estimate_kappa(model, batch_sizes=(0,))
    with pytest.raises(ValueError, match="batch_sizes"):
        estimate_kappa(model, batch_sizes=(91,))
    with pytest.raises(ValueError, match="not both"):
        estimate_kappa(model, probe_graphs((3,)), batch_sizes=(3,))
    with pytest.raises(TypeError, match="AtomicGraph"):
        estimate_kappa(model, [torch.zeros(3)])
    with pytest.raises(ValueError, match="drift_tolerance"):
        estimate_kappa(model, drift_tolerance=0)
    with pytest.raises(TypeError, match="nn.Module"):
        estimate_kappa(lambda w: "not a model", widths=[2])
    frozen = _TinyMPNN(4).requires_grad_(False)
    with pytest.raises(ValueError, match="trainable"):
        estimate_kappa(frozen, batch_sizes=(3,))


def test_counts_forward_as_count_flops_does():
    model = _seeded(lambda: _TinyMPNN(5))
    g = probe_graphs((15,))[0].with_edges(3.0, 6)
    est = estimate_kappa(model, g)
    assert est.points[0].flops == count_flops(model, g).total
