"""The residual bootstrap (``bootstrap="residual"``): the design is fixed in every draw, residuals are
resampled as whole per-run curves, intervals cover the truth, bad options are named."""

from __future__ import annotations

import numpy as np
import pytest

import nnip_scaling.scaling.fit as fit_module
from nnip_scaling.scaling import AnalysisSettings, fit_power_law, fit_sum_power_law, power_law, sum_power_law
from nnip_scaling.scaling.fit import _residual_draws

TRUE = dict(L_inf=0.0, A=10**2.109, B=10**3.261, alpha=0.524, beta=0.499)  # GemNet-OC, table 7


def _designed_study(seed: int, *, sigma: float = 0.004, rho: float = 0.8, n_widths: int = 4, n_evals: int = 10):
    """A designed study: ``n_widths`` model sizes, each evaluated at the same ``n_evals`` data sizes, with
    AR(1) noise on ``log L`` along each learning curve (correlated within a run, independent between runs)."""
    rng = np.random.default_rng(seed)
    N = np.repeat(np.geomspace(3e5, 8e6, n_widths), n_evals)
    D = np.tile(np.geomspace(2e7, 9e8, n_evals), n_widths)
    noise = np.empty((n_widths, n_evals))
    noise[:, 0] = rng.normal(0.0, sigma, n_widths)
    for j in range(1, n_evals):
        noise[:, j] = rho * noise[:, j - 1] + np.sqrt(1 - rho**2) * rng.normal(0.0, sigma, n_widths)
    loss = sum_power_law(N, D, **TRUE) * np.exp(noise.reshape(-1))
    return N, D, loss, np.repeat(np.arange(n_widths), n_evals)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_residual_intervals_cover_the_true_exponents_at_low_noise(seed):
    N, D, loss, run = _designed_study(seed)
    f = fit_sum_power_law(N, D, loss, L_inf=0.0, groups=run, bootstrap="residual", n_bootstrap=80, n_starts=4,
                          seed=seed)
    assert f.bootstrap == "residual blocks per run, design fixed"
    assert "resampling residual blocks per run, design fixed" in str(f)
    for sym in ("alpha", "beta"):
        lo, hi = f.ci[sym]
        assert lo <= TRUE[sym] <= hi, (sym, f.ci[sym])
        assert hi < 5.0 - 1e-3, f"{sym} interval reaches the bound: {f.ci[sym]}"


def _designs_refitted(monkeypatch, **kw):
    """The distinct model sizes of every bootstrap refit of a sum-law fit of a 4-width study."""
    seen = []
    real = fit_module._local_fit

    def recording(model, *args, **kwargs):
        seen.append(np.unique(np.round(model.logx[:, 0], 9)))
        return real(model, *args, **kwargs)

    N, D, loss, run = _designed_study(0)
    full = fit_sum_power_law(N, D, loss, L_inf=0.0, n_bootstrap=0, n_starts=2)
    monkeypatch.setattr(fit_module, "_local_fit", recording)
    fit_sum_power_law(N, D, loss, L_inf=0.0, groups=run, n_bootstrap=40, seed=3,
                      init={k: getattr(full, k) for k in ("A", "B", "alpha", "beta")}, **kw)
    return seen[-40:], np.unique(np.round(np.log(N), 9))  # the last 40 fits are the bootstrap refits


def test_every_residual_draw_keeps_all_model_sizes(monkeypatch):
    designs, all_N = _designs_refitted(monkeypatch, bootstrap="residual")
    assert len(designs) == 40
    for d in designs:
        np.testing.assert_array_equal(d, all_N)


def test_resampling_runs_loses_model_sizes_in_some_draws(monkeypatch):
    # The contrast that motivates the residual bootstrap (and shows the check above can fail).
    designs, all_N = _designs_refitted(monkeypatch, bootstrap="cases")
    assert any(len(d) < len(all_N) for d in designs)


def test_residual_draws_replace_each_curve_by_a_whole_curve_of_its_pool():
    # Two runs of 5 points (one pool), one run of 4 points alone (moving-block fallback), rows shuffled.
    rng = np.random.default_rng(0)
    groups = np.array([0] * 5 + [1] * 5 + [2] * 4)
    order = np.concatenate([np.arange(5.0), np.arange(5.0), np.arange(4.0)])
    resid = np.concatenate([np.arange(5) + 10.0, np.arange(5) + 20.0, np.arange(4) + 30.0])
    perm = rng.permutation(groups.size)
    groups, order, resid = groups[perm], order[perm], resid[perm]
    draws = _residual_draws(np.random.default_rng(1), resid, groups, order, 200)
    assert draws.shape == (200, groups.size)
    curves = {g: np.flatnonzero(groups == g)[np.argsort(order[groups == g])] for g in range(3)}
    pool = {tuple(resid[curves[0]]), tuple(resid[curves[1]])}
    for d in draws:
        for g in (0, 1):
            assert tuple(d[curves[g]]) in pool  # a whole curve, in its order, from a run of equal length
        assert set(d[curves[2]]) <= set(resid[curves[2]])  # the lone run only reuses its own residuals
    assert {tuple(d[curves[0]]) for d in draws} == pool  # both curves are drawn


def test_residual_draws_without_groups_resample_single_points():
    resid = np.array([-1.0, 0.0, 1.0, 2.0])
    draws = _residual_draws(np.random.default_rng(0), resid, None, np.arange(4.0), 300)
    assert set(np.unique(draws)) == set(resid)
    assert not np.all(draws == resid)


def test_power_law_residual_bootstrap_covers_gamma_and_keeps_x():
    rng = np.random.default_rng(4)
    x = np.geomspace(1.0, 1e4, 20)
    y = power_law(x, 0.7, 0.4) * np.exp(rng.normal(0, 0.01, x.size))
    for kw in ({}, {"huber_delta": 0.05}):  # closed-form and nonlinear (Huber) paths
        f = fit_power_law(x, y, bootstrap="residual", n_bootstrap=100, seed=0, **kw)
        lo, hi = f.ci["gamma"]
        assert f.bootstrap == "residuals, design fixed"
        assert lo < 0.4 < hi and hi - lo < 0.1, (kw, f.ci["gamma"])


@pytest.mark.parametrize("bad", ["runs", "Residual", 1, None])
def test_bad_bootstrap_option_is_named(bad):
    N, D, loss, run = _designed_study(0)
    with pytest.raises(ValueError, match="bootstrap must be one of 'cases', 'residual'"):
        fit_sum_power_law(N, D, loss, groups=run, bootstrap=bad, n_bootstrap=0)
    with pytest.raises(ValueError, match="bootstrap must be one of"):
        fit_power_law(np.arange(1.0, 6.0), np.arange(5.0, 0.0, -1.0), bootstrap=bad)


def test_analysis_settings_accept_residual_and_name_bad_resample():
    assert AnalysisSettings(resample="residual").resample == "residual"
    with pytest.raises(ValueError, match="resample must be 'runs', 'rows' or 'residual'"):
        AnalysisSettings(resample="blocks")
