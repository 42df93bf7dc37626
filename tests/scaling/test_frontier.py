"""Pareto frontier (approach 1), EMA smoothing and warm-up removal."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnip_scaling.scaling import pareto_frontier, prepare_runs, smooth_ema, warmup_mask
from nnip_scaling.scaling.synthetic import synthetic_runs


def _brute_force(c, y):
    """A point is on the frontier iff no other point has compute <= and loss <= (strictly better in
    one), with exact duplicates kept once (the first in input order)."""
    keep = []
    for i in range(len(c)):
        dominated = False
        for j in range(len(c)):
            if j == i:
                continue
            if c[j] <= c[i] and y[j] <= y[i] and (c[j] < c[i] or y[j] < y[i] or j < i):
                dominated = True
                break
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: (c[i], y[i]))


def test_hand_example():
    c = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 5.0])
    y = np.array([1.0, 0.8, 0.7, 0.75, 0.5, 0.5])
    # c=2 keeps the lower loss 0.7; c=3 (0.75) is dominated; c=5 ties the loss at c=4: dropped.
    assert pareto_frontier(c, y).tolist() == [0, 2, 4]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 12), st.integers(1, 12)), min_size=1, max_size=40))
def test_matches_brute_force(points):
    # Small integer grids make ties in compute and loss frequent.
    c = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    idx = pareto_frontier(c, y)
    assert idx.tolist() == _brute_force(c, y)
    assert np.all(np.diff(c[idx]) > 0) and np.all(np.diff(y[idx]) < 0)


def test_smooth_ema_known_values_per_run_and_order():
    x = np.array([1.0, 0.0, 0.0, 5.0, 3.0])
    run = np.array(["a", "a", "a", "b", "b"])
    got = smooth_ema(x, 0.5, run_id=run)
    np.testing.assert_allclose(got, [1.0, 0.5, 0.25, 5.0, 4.0])
    # order reverses run "a": the average starts at its last row.
    got = smooth_ema(x, 0.5, run_id=run, order=[3, 2, 1, 1, 2])
    np.testing.assert_allclose(got, [0.5, 0.0, 0.0, 5.0, 4.0])
    np.testing.assert_array_equal(smooth_ema(x, 0.0, run_id=run), x)
    with pytest.raises(ValueError, match="factor must be in"):
        smooth_ema(x, 1.0)


def test_warmup_mask_drops_first_fraction_per_run():
    order = np.array([10, 20, 50, 100, 1, 2, 5, 10])
    run = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    keep = warmup_mask(order, 0.1, run_id=run)
    # run 0 drops order < 10 (nothing); run 1 drops order < 1 (nothing) -> both keep all.
    assert keep.all()
    keep = warmup_mask(order, 0.3, run_id=run)
    assert keep.tolist() == [False, False, True, True, False, False, True, True]
    assert warmup_mask(order, 0.0, run_id=run).all()


def test_frontier_options_need_run_id_and_apply():
    runs = synthetic_runs([1e5, 1e6], D_max=1e8, fractions=np.linspace(0.05, 1, 20), A=50.0,
                          B=500.0, alpha=0.4, beta=0.3, noise=0.05, seed=1)
    with pytest.raises(ValueError, match="run_id is required"):
        pareto_frontier(runs.flops, runs.loss, drop_first=0.1)
    idx = pareto_frontier(runs.flops, runs.loss, run_id=runs.run_id, drop_first=0.5)
    # No point from the first half of a run survives.
    run_max = {r: runs.tokens[runs.run_id == r].max() for r in np.unique(runs.run_id)}
    assert all(runs.tokens[i] >= 0.5 * run_max[runs.run_id[i]] for i in idx)
    # The EMA frontier is the frontier of the smoothed losses.
    smoothed = smooth_ema(runs.loss, 0.9, run_id=runs.run_id, order=runs.flops)
    idx_ema = pareto_frontier(runs.flops, runs.loss, run_id=runs.run_id, ema=0.9)
    assert idx_ema.tolist() == pareto_frontier(runs.flops, smoothed).tolist()


def test_prepare_runs_smooths_then_drops():
    runs = synthetic_runs([1e5, 1e6], D_max=1e8, fractions=np.linspace(0.1, 1, 10), A=50.0,
                          B=500.0, alpha=0.4, beta=0.3, noise=0.05, seed=2)
    out = prepare_runs(runs, drop_first=0.35, ema=0.9)
    assert len(out) == 2 * 7  # fractions 0.4 .. 1.0 kept per run
    full = smooth_ema(runs.loss, 0.9, run_id=runs.run_id, order=runs.extra["step"])
    np.testing.assert_allclose(out.loss, full[runs.tokens >= 0.35 * 1e8])
    assert prepare_runs(runs) is runs


def test_bad_input():
    with pytest.raises(ValueError, match=r"loss must be finite: loss\[1\] = nan"):
        pareto_frontier([1, 2], [1, float("nan")])
    with pytest.raises(ValueError, match=r"compute must be positive: compute\[0\] = -1.0"):
        pareto_frontier([-1, 2], [1, 2])
    with pytest.raises(ValueError, match="same length"):
        pareto_frontier([1, 2, 3], [1, 2])
    with pytest.raises(TypeError, match="compute must be a 1-D array of numbers"):
        pareto_frontier(["a", "b"], [1, 2])
    with pytest.raises(ValueError, match="drop_first must be in"):
        pareto_frontier([1, 2], [1, 2], run_id=[0, 0], drop_first=1.5)
