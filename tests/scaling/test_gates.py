"""Sanity gates: the wider-wins fraction on known orderings, and the bound / interval checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnip_scaling.scaling.gates import exponent_gates, wider_wins


def _grid(loss_of, sizes=(1e3, 2e3, 4e3), ds=(10.0, 20.0, 40.0, 80.0)):
    N = np.repeat(sizes, len(ds))
    D = np.tile(ds, len(sizes))
    return N, D, np.array([loss_of(n, d) for n, d in zip(N, D)])


def test_wider_always_wins_and_always_loses():
    N, D, y = _grid(lambda n, d: n ** -0.3 + d ** -0.3)
    g = wider_wins(N, D, y)
    assert g.passed and g.wins == g.pairs == 8 and g.fraction == 1.0 and g.symbols == ()
    g = wider_wins(N, D, _grid(lambda n, d: n ** 0.3 + d ** -0.3)[2])
    assert not g.passed and g.wins == 0 and g.symbols == ("alpha",)
    assert "0/8" in g.message and "learning rate" in g.advice


def test_wider_wins_counts_pairs_per_data_size():
    # the largest model only wins at the two largest data sizes: 4 (first pair) + 2 (second) of 8
    def loss(n, d):
        return 1.0 / n if n < 4e3 else (1.0 / 2e3 + (0.001 if d < 30 else -0.0001))

    g = wider_wins(*_grid(loss), min_fraction=0.75)
    assert (g.wins, g.pairs) == (6, 8) and g.passed
    assert g.per_pair[(2e3, 4e3)] == (2, 4)
    assert not wider_wins(*_grid(loss)).passed  # 75% < the default 80%


def test_wider_wins_interpolates_between_logged_sizes():
    # the large model logs other data sizes than the small one: compared on its log-log curve
    N = np.array([1.0, 1.0, 2.0, 2.0, 2.0])
    D = np.array([15.0, 30.0, 10.0, 20.0, 40.0])
    y = np.array([1.0, 0.5, 0.9, 0.52, 0.3])  # at D=15 the large model has ~0.68 < 1; at D=30 ~0.39 < 0.5
    g = wider_wins(N, D, y)
    assert (g.wins, g.pairs) == (2, 2)


def test_wider_wins_degenerate_inputs():
    g = wider_wins([1.0, 1.0], [1.0, 2.0], [1.0, 0.5])
    assert not g.passed and math.isnan(g.fraction) and "model size" in g.message
    g = wider_wins([1.0, 2.0], [1.0, 5.0], [1.0, 0.5])
    assert not g.passed and g.pairs == 0
    with pytest.raises(ValueError, match="one length"):
        wider_wins([1.0], [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="min_fraction"):
        wider_wins([1.0], [1.0], [1.0], min_fraction=0.0)


def test_exponent_gates():
    gates = {g.name: g for g in exponent_gates(
        {"alpha": 4.95, "beta": 0.4, "gamma_c": 0.0}, {"alpha": (4.5, 5.0), "beta": (0.3, 0.5), "gamma_c": (0.0, 3.0)})}
    assert not gates["alpha_bound"].passed and "upper bound 5" in gates["alpha_bound"].message
    assert not gates["alpha_interval"].passed and gates["alpha_interval"].symbols == ("alpha",)
    assert gates["beta_bound"].passed and gates["beta_interval"].passed
    assert not gates["gamma_c_bound"].passed and "lower bound 0" in gates["gamma_c_bound"].message
    msg = gates["gamma_c_interval"].message
    assert not gates["gamma_c_interval"].passed and "does not exclude 0" in msg and "spans 60%" in msg
    # a small but clearly positive exponent is a measurement
    ok = exponent_gates({"gamma_c": 0.05}, {"gamma_c": (0.03, 0.07)})
    assert all(g.passed for g in ok)
    assert not exponent_gates({"beta": math.nan}, {})[0].passed
