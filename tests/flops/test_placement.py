"""Tests of parameter placement and predicted_kappa (the analytic cross-check of the counted κ)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn

from nnip_scaling.flops import (
    KappaPrediction,
    count_flops,
    estimate_kappa,
    parameter_placement,
    predicted_kappa,
    probe_graphs,
)
from nnip_scaling.graph import AtomicGraph
from nnip_scaling.models import build_model

MAX_Z = 18


@dataclass(frozen=True)
class _Config:
    cutoff: float = 3.0
    max_neighbors: int | None = 6


class _TinyMPNN(nn.Module):
    """Embedding (lookup), edge Linear on h[src] (per edge), index_add, node MLP, sum.

    Counted forward FLOPs (n atoms, E edges, width w)::

        E(2w² + w)   message Linear: matmul + bias         -> parameters, per edge
        E·w          index_add                              -> no parameter
        n·w          residual add                           -> no parameter
        n(2w² + w)   MLP layer 1                            -> parameters, per node
        n·w          SiLU                                   -> no parameter
        n(2w + 1)    MLP layer 2                            -> parameters, per node
        n            energy sum                             -> no parameter
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(MAX_Z + 1, width)
        self.msg = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 1))
        self.config = _Config()

    def forward(self, graph: AtomicGraph) -> torch.Tensor:
        h = self.emb(graph.atomic_numbers)
        src, dst = graph.edge_index
        h = h + torch.zeros_like(h).index_add_(0, dst, self.msg(h[src]))
        e = self.mlp(h).squeeze(-1)
        return e.new_zeros(graph.n_graphs).index_add(0, graph.batch, e)


def _seeded(fn, seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return fn()


def _uses(pred: KappaPrediction, name: str) -> dict[tuple[str, int], float]:
    """``(domain, flops_per_application) -> multiplicity`` of one parameter."""
    return {(u.domain, u.flops_per_application): u.multiplicity for u in pred.uses if u.name == name}


def test_known_answer_tiny_mpnn():
    w = 7
    model = _seeded(lambda: _TinyMPNN(w))
    g = probe_graphs((20,))[0].with_edges(3.0, 6)
    n, e = g.n_atoms, g.n_edges
    pred = parameter_placement(model, g)
    # placement, read from what runs
    assert _uses(pred, "msg.weight") == {("edge", 2): 1.0}
    assert _uses(pred, "msg.bias") == {("edge", 1): 1.0}
    assert _uses(pred, "mlp.0.weight") == {("node", 2): 1.0}
    assert _uses(pred, "mlp.0.bias") == {("node", 1): 1.0}
    assert _uses(pred, "mlp.2.weight") == {("node", 2): 1.0}
    assert _uses(pred, "emb.weight") == {("free", 0): 0.0}
    assert pred.free == (MAX_Z + 1) * w and pred.unused == 0 and pred.ambiguous == ()
    # P_d: a weight counts 1 per application, a bias 1/2 (1 FLOP, not 2)
    assert pred.per_edge == w * w + w / 2
    assert pred.per_node == (w * w + w / 2) + (w + 0.5)
    assert pred.per_triplet == 0 and pred.per_graph == 0 and pred.other_per_atom == 0
    # predicted FLOPs: exactly the parameter terms of the docstring
    expected = e * (2 * w * w + w) + n * (2 * w * w + w) + n * (2 * w + 1)
    assert pred.flops == pytest.approx(expected, rel=1e-12)
    n_params = sum(p.numel() for p in model.parameters())
    assert pred.n_params == n_params
    assert pred.kappa == pytest.approx(expected / (n * n_params), rel=1e-12)
    assert predicted_kappa(model, g) == pred.kappa
    assert pred.mean_neighbors == pytest.approx(e / n)
    # the counted total exceeds the prediction by exactly the parameter-free ops
    counted = count_flops(model, g).total
    assert counted - pred.flops == pytest.approx(e * w + n * w + n * w + n, rel=1e-12)
    assert "msg.weight" in pred.table() and "predicted kappa" in str(pred)


def test_kappa_at_extrapolates_to_another_graph_exactly():
    w = 6
    model = _seeded(lambda: _TinyMPNN(w))
    mols = probe_graphs((30,))[0]
    a = parameter_placement(model, mols.with_edges(3.0, 6))
    b = parameter_placement(model, mols.with_edges(2.0, 2))
    assert b.mean_neighbors < a.mean_neighbors
    assert a.kappa_at(mean_neighbors=b.mean_neighbors) == pytest.approx(b.kappa, rel=1e-12)
    assert a.kappa_at(mean_neighbors=a.mean_neighbors) == pytest.approx(a.kappa, rel=1e-12)
    # graphs without edges: the per-edge parameters cost nothing
    assert a.kappa_at(mean_neighbors=0) == pytest.approx(2 * a.per_node / a.n_params)


def test_edges_built_from_config_when_missing():
    model = _seeded(lambda: _TinyMPNN(5))
    g = probe_graphs((10,))[0]
    assert parameter_placement(model, g).n_edges == g.with_edges(3.0, 6).n_edges


def test_spherical_multiplicities():
    lmax = 4
    model = _seeded(lambda: build_model("spherical", width=2, depth=1, l_max=lmax, m_max=2))
    pred = parameter_placement(model, probe_graphs((6,))[0])
    blk = "representation.blocks.0."
    # SO(3) linear: W_l acts on the 2l+1 components of every atom -> (l_max+1)^2/(l_max+1) per element
    assert _uses(pred, blk + "ffn_1.weight") == {("node", 2): pytest.approx(lmax + 1.0)}
    assert _uses(pred, blk + "ffn_1.bias") == {("node", 1): 1.0}
    # SO(2) linear: m = 0 block once per edge, m > 0 blocks on the +m and -m rows (twice)
    assert _uses(pred, blk + "conv_1.weight_m0") == {("edge", 2): 1.0}
    assert _uses(pred, blk + "conv_1.weights_m.0") == {("edge", 2): 2.0}
    assert _uses(pred, blk + "conv_1.weights_m.1") == {("edge", 2): 2.0}
    assert _uses(pred, blk + "conv_1.bias_m0") == {("edge", 1): 1.0}
    assert _uses(pred, blk + "radial.net.0.weight") == {("edge", 2): 1.0}
    # LayerNorm of the radial MLP: gain and bias once per output element, per edge
    assert _uses(pred, blk + "radial.net.1.weight") == {("edge", 1): 1.0}
    for name in ("embedding.weight", "representation.source_embedding.weight"):
        assert _uses(pred, name) == {("free", 0): 0.0}
    assert pred.unused == 0
    assert {u.domain for u in pred.uses} <= {"node", "edge", "free"}


def test_parameter_used_at_two_sizes_gets_two_entries():
    model = _seeded(lambda: build_model("directional", width=8, depth=1))
    pred = parameter_placement(model, probe_graphs((6,))[0])
    # the circular-basis weight embeds the radial basis of every edge and of every quadruplet-graph edge
    cbf = _uses(pred, "representation.basis.cbf_weight")
    assert set(cbf) == {("edge", 2), ("other", 2)} and cbf[("edge", 2)] == 1.0
    # applied to the padded inner pairs of the quadruplet graph: no graph size, "other"
    assert set(_uses(pred, "representation.blocks.0.quadruplet.mlp_cbf.linear.weight")) == {("other", 2)}
    assert pred.other_per_atom > 0
    # the per-atom "other" applications are kept when extrapolating
    k = pred.mean_neighbors
    assert pred.kappa_at(mean_neighbors=k) == pytest.approx(pred.kappa, rel=1e-12)


@pytest.mark.parametrize("kind,width,depth,options", [
    ("cartesian", 16, 2, {}),
    ("spherical", 2, 1, {"l_max": 2}),
])
def test_placement_is_structural(kind, width, depth, options):
    """Placement found on one graph predicts another graph's prediction (node/edge families)."""
    make = lambda cutoff: _seeded(lambda: build_model(kind, width=width, depth=depth, cutoff=cutoff,  # noqa: E731
                                                       max_neighbors=30, **options))
    mols = probe_graphs((12,))[0]
    a = parameter_placement(make(6.0), mols)
    b = parameter_placement(make(3.0), mols)
    assert b.mean_neighbors < a.mean_neighbors
    assert {u.domain for u in a.uses} <= {"node", "edge", "free"}
    assert a.kappa_at(mean_neighbors=b.mean_neighbors) == pytest.approx(b.kappa, rel=1e-12)


# widths where parameter applications dominate the forward pass (docs/flops.md)
_DOMINANT = [
    ("unconstrained", 128, 5, {}),
    ("cartesian", 64, 2, {}),
    ("directional", 128, 1, {}),
    ("spherical", 16, 1, {"hidden_channels": 128}),
]


@pytest.mark.parametrize("kind,width,depth,options", _DOMINANT)
def test_predicted_within_10_percent_of_counted(kind, width, depth, options):
    model = _seeded(lambda: build_model(kind, width=width, depth=depth, **options))
    g = probe_graphs((32,))[0]
    counted = estimate_kappa(model, g)
    pred = parameter_placement(model, g)
    assert pred.mean_neighbors == pytest.approx(counted.mean_neighbors)
    # the prediction omits parameter-free FLOPs only: never above the count
    assert pred.flops <= counted.points[0].flops
    assert pred.kappa / counted.kappa == pytest.approx(1.0, abs=0.10)
    assert pred.unused == 0 and pred.ambiguous == ()


def test_spherical_shortfall_is_the_wigner_rotations():
    """At the paper's hidden size 32 the edge-frame rotations (parameter-free matmuls) are ~10%."""
    model = _seeded(lambda: build_model("spherical", width=8, depth=1))
    g = probe_graphs((32,))[0].with_edges(6.0, 30)
    rep = count_flops(model, g)
    pred = parameter_placement(model, g)
    rotations = rep.by_op["aten.bmm"]  # to_edge_frame / from_edge_frame
    assert rep.total - pred.flops >= rotations > 0.08 * rep.total
    assert pred.flops / rep.total < 0.9


def test_conservative_forward_applies_weights_again():
    direct = _seeded(lambda: build_model("unconstrained", width=16, depth=2))
    cons = _seeded(lambda: build_model("unconstrained", width=16, depth=2, forces="conservative"))
    g = probe_graphs((10,))[0]
    pd, pc = parameter_placement(direct, g), parameter_placement(cons, g)
    # the force pass multiplies the output gradient by the geometry weights once more (per edge)
    assert _uses(pd, "representation.blocks.1.lin_geometry.weight") == {("edge", 2): 1.0}
    assert _uses(pc, "representation.blocks.1.lin_geometry.weight") == {("edge", 2): 2.0}
    assert pc.flops <= count_flops(cons, g.with_edges(6.0, 30)).total


def test_tied_parameter_is_placed_once_with_both_uses():
    tied = _seeded(lambda: _TinyMPNN(4))
    tied.mlp[0].weight = tied.msg.weight  # one tensor, used per edge and per node
    pred = parameter_placement(tied, probe_graphs((5,))[0])
    assert _uses(pred, "msg.weight") == {("edge", 2): 1.0, ("node", 2): 1.0}
    assert pred.n_params == sum(p.numel() for p in tied.parameters())


def test_bad_input():
    model = _TinyMPNN(4)
    g = probe_graphs((3,))[0]
    with pytest.raises(TypeError, match="nn.Module"):
        parameter_placement(lambda x: x, g)
    with pytest.raises(TypeError, match="AtomicGraph"):
        parameter_placement(model, torch.zeros(3))
    with pytest.raises(ValueError, match="trainable"):
        parameter_placement(_TinyMPNN(4).requires_grad_(False), g)
    shared = _TinyMPNN(4)
    shared.extra = nn.Parameter(shared.msg.weight.data[:2])  # a second parameter on the same storage
    with pytest.raises(ValueError, match="share storage"):
        parameter_placement(shared, g)
    pred = parameter_placement(model, g)
    with pytest.raises(ValueError, match="mean_neighbors"):
        pred.kappa_at(mean_neighbors=-1.0)
    with pytest.raises(ValueError, match="triplets_per_atom"):
        pred.kappa_at(mean_neighbors=3.0, triplets_per_atom=float("nan"))


def test_float64_and_compiled_models_place_the_same():
    model = _seeded(lambda: _TinyMPNN(5))
    g = probe_graphs((8,))[0]
    ref = parameter_placement(model, g)
    f64 = parameter_placement(_seeded(lambda: _TinyMPNN(5)).double(), g)  # graph converted to float64
    assert f64.uses == ref.uses and f64.kappa == ref.kappa
    compiled = parameter_placement(torch.compile(model, backend="eager"), g)
    assert compiled.uses == ref.uses and compiled.kappa == ref.kappa


def test_derived_weights_are_placed_on_their_parameters():
    """A weight re-laid out from parameters (concatenated, sign-flipped, rows picked by a buffer index)
    and then applied is an application of those parameters, each for its share of the elements."""

    class RealForm(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(3, 4))
            self.v = torch.nn.Parameter(torch.randn(3, 2))
            self.register_buffer("rows", torch.tensor([0, 2]), persistent=False)

        def forward(self, g):
            h = g.positions.new_ones(g.n_atoms, 6)
            w1, w2 = self.w.chunk(2, dim=1)
            real = torch.cat((self.w, torch.cat((-w2, w1), dim=1)), dim=0)  # [6, 4]: each element of w twice
            y = h @ real                                                       # per atom
            picked = torch.cat((self.v, self.w), dim=1).index_select(0, self.rows)  # [2, 6]: 2/3 of v, w
            z = h[:, :2] @ picked
            return y.sum() + z.sum()

    model = _seeded(RealForm)
    pred = parameter_placement(model, probe_graphs((6,))[0])
    assert _uses(pred, "w") == {("node", 2): pytest.approx(2.0 + 2.0 / 3.0)}
    assert _uses(pred, "v") == {("node", 2): pytest.approx(2.0 / 3.0)}
