"""Property tests: the fits recover generated power laws, and the truth lies in the reported interval.

The noise is low (1e-4..1e-2 on log L) and antithetic: every point appears twice, with log noise
+e and -e. The truth is then an exact stationary point of the least-squares objective (and of the
Huber one, whose residuals stay in its quadratic zone or are symmetric), so the fit must return it to
optimiser precision, whatever the draw, and the bootstrap interval built around the estimate must
contain it. That makes "recovers the law within its interval" a deterministic property of our code,
not a 95%-of-the-time statistical statement (which would make the test fail in 1 draw of 20).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnip_scaling.scaling import FitWarning, fit_power_law, fit_sum_power_law, power_law, sum_power_law


def _antithetic(y: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    e = np.random.default_rng(seed).normal(0.0, sigma, y.size)
    return np.concatenate([y * np.exp(e), y * np.exp(-e)])


def _inside(value: float, interval: tuple[float, float], rel: float = 1e-9) -> bool:
    lo, hi = interval
    slack = rel * max(abs(lo), abs(hi), 1e-300)
    return lo - slack <= value <= hi + slack


@settings(max_examples=20, deadline=None)
@given(F=st.floats(0.01, 100.0), gamma=st.floats(0.05, 1.5), decades=st.floats(1.0, 6.0),
       n=st.integers(5, 30), sigma=st.floats(1e-4, 1e-2), seed=st.integers(0, 2**31),
       huber=st.booleans())
def test_power_law_recovered_within_its_interval(F, gamma, decades, n, sigma, seed, huber):
    x = np.geomspace(1.0, 10.0**decades, n)
    xx = np.concatenate([x, x])
    loss = _antithetic(power_law(x, F, gamma), sigma, seed)
    # huber: the nonlinear least-squares path (a Huber threshold no residual reaches), else closed form
    fit = fit_power_law(xx, loss, n_bootstrap=50 if huber else 200, seed=seed,
                        huber_delta=1.0 if huber else None)
    assert fit.gamma == pytest.approx(gamma, rel=1e-6, abs=1e-8)
    assert fit.F == pytest.approx(F, rel=1e-5)
    assert _inside(gamma, fit.ci["gamma"]) and _inside(F, fit.ci["F"])
    assert fit.ci["gamma"][1] - fit.ci["gamma"][0] < 20 * sigma  # low noise, narrow interval


@pytest.mark.slow
@settings(max_examples=6, deadline=None)
@given(alpha=st.floats(0.2, 1.0), beta=st.floats(0.2, 1.0), logA=st.floats(0.5, 4.0), log_ratio=st.floats(-1.0, 1.0),
       sigma=st.floats(1e-4, 5e-4), seed=st.integers(0, 2**31))
def test_sum_law_recovered_within_its_interval(alpha, beta, logA, log_ratio, sigma, seed):
    N = np.repeat(np.geomspace(3e5, 8e6, 5), 6)
    D = np.tile(np.geomspace(1e7, 1e9, 6), 5)
    # Both terms must shape the data, or an exponent is not identifiable and no fit can recover it
    # (e.g. B = 10 makes B/D^beta ~ 1e-6 of the loss here): the D term is 10^log_ratio times the N term
    # at the centre of the design.
    A = 10**logA
    B = 10**log_ratio * A * np.sqrt(3e5 * 8e6) ** -alpha * 1e8**beta
    loss = _antithetic(sum_power_law(N, D, 0.0, A, B, alpha, beta), sigma, seed)
    NN, DD = np.concatenate([N, N]), np.concatenate([D, D])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)  # e.g. a wide bootstrap interval
        fit = fit_sum_power_law(NN, DD, loss, L_inf=0.0, n_bootstrap=30, n_starts=4, seed=seed)
    # Huber's psi is odd, so the antithetic residuals +-e cancel in the gradient: the truth is the optimum.
    assert fit.alpha == pytest.approx(alpha, abs=1e-5) and fit.beta == pytest.approx(beta, abs=1e-5)
    assert _inside(alpha, fit.ci["alpha"], rel=1e-4) and _inside(beta, fit.ci["beta"], rel=1e-4)
