"""nnip_scaling.nn.aggregation: the three forms against explicit formulas, edge weights = aggregate,
smoothness as the last neighbour leaves, errors naming the argument."""

from __future__ import annotations

import pytest
import torch

from nnip_scaling.geometry import polynomial_envelope
from nnip_scaling.nn.aggregation import AGGREGATIONS, aggregate, edge_weights, soft_neighbor_count
from nnip_scaling.ops import scatter_mean


def _edges(seed: int = 0, n_atoms: int = 5, n_edges: int = 14):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, n_atoms - 1, (n_edges,), generator=g)  # atom n_atoms-1 has no edges
    dist = torch.rand(n_edges, generator=g, dtype=torch.float64) * 4.0  # some beyond the cutoff 3
    messages = torch.randn(n_edges, 2, 3, generator=g, dtype=torch.float64)
    return messages, dist, target, n_atoms


def test_mean_is_the_papers_scatter_mean():
    m, d, t, n = _edges()
    assert torch.equal(aggregate(m, d, t, n, aggregation="mean", cutoff=3.0), scatter_mean(m, t, n))


@pytest.mark.parametrize("form", ["soft_mean", "sum"])
def test_smooth_forms_match_their_formula(form):
    m, d, t, n = _edges()
    u = polynomial_envelope(d, cutoff=3.0)
    out = aggregate(m, d, t, n, aggregation=form, cutoff=3.0, avg_num_neighbors=7.0)
    for v in range(n):
        sel = t == v
        total = (u[sel, None, None] * m[sel]).sum(0)
        expect = total / (1.0 + u[sel].sum()) if form == "soft_mean" else total / 7.0
        torch.testing.assert_close(out[v], expect, rtol=1e-12, atol=1e-14)
    assert torch.equal(out[n - 1], torch.zeros(2, 3, dtype=torch.float64))


@pytest.mark.parametrize("form", AGGREGATIONS)
def test_edge_weights_give_the_same_aggregate(form):
    m, d, t, n = _edges(1)
    w = edge_weights(d, t, n, aggregation=form, cutoff=3.0, avg_num_neighbors=5.0)
    via_weights = torch.zeros(n, 2, 3, dtype=torch.float64).index_add(0, t, m * w[:, None, None])
    torch.testing.assert_close(via_weights, aggregate(m, d, t, n, aggregation=form, cutoff=3.0, avg_num_neighbors=5.0))


def test_soft_mean_goes_to_zero_smoothly_as_the_last_neighbour_leaves():
    # one neighbour whose message does NOT vanish at the cutoff: the soft mean still does
    target = torch.tensor([0])
    message = torch.ones(1, 1, dtype=torch.float64)
    for r, expect in ((0.0, 0.5), (3.0 - 1e-9, 0.0), (3.0, 0.0)):
        out = aggregate(message, torch.tensor([r], dtype=torch.float64), target, 1, aggregation="soft_mean", cutoff=3.0)
        assert float(out) == pytest.approx(expect, abs=1e-20)
    count = soft_neighbor_count(torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64), torch.tensor([0, 0, 1]), 2)
    assert count.tolist() == [1.5, 0.0]


def test_errors_name_the_argument():
    m, d, t, n = _edges()
    with pytest.raises(ValueError, match="aggregation must be one of"):
        aggregate(m, d, t, n, aggregation="max", cutoff=3.0)
    with pytest.raises(ValueError, match="avg_num_neighbors"):
        aggregate(m, d, t, n, aggregation="sum", cutoff=3.0, avg_num_neighbors=0.0)
