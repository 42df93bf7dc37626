"""Compute-optimal allocation (eq. 6-7): the paper's table 7 -> table 1, and the algebra."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from nnip_scaling.scaling import (
    ComputeOptimal,
    FitWarning,
    SumPowerLawFit,
    compute_optimal,
    consistency,
    fit_power_law,
    fit_sum_power_law,
    pareto_frontier,
    sum_power_law,
)
from nnip_scaling.scaling.synthetic import synthetic_runs

# Table 7 (log10 A, log10 B, alpha, beta), the paper's kappa (fig. 2: 2.33, 28.09, 35.18, 74.36),
# and table 1's derived column (F_c in PFLOPs, gamma_c).
PAPER = {
    "MPNN": ((1.356, 2.194, 0.276, 0.311), 2.33, (0.934, 0.146)),
    "MC-EGNN": ((1.582, 2.750, 0.387, 0.394), 28.09, (0.811, 0.195)),
    "GemNet-OC": ((2.109, 3.261, 0.524, 0.499), 35.18, (0.479, 0.256)),
    "eSEN": ((3.760, 5.129, 0.817, 0.753), 74.36, (0.669, 0.392)),
}


def _paper_fit(arch):
    (la, lb, alpha, beta), _, _ = PAPER[arch]
    return SumPowerLawFit(L_inf=0.0, A=10**la, B=10**lb, alpha=alpha, beta=beta)


@pytest.mark.parametrize("arch", list(PAPER))
def test_table7_reproduces_table1(arch):
    _, kappa, (F_c, gamma_c) = PAPER[arch]
    opt = compute_optimal(_paper_fit(arch), kappa, compute_unit=1e15)
    assert abs(opt.gamma_c - gamma_c) < 0.002
    assert opt.F_c == pytest.approx(F_c, rel=0.03)
    # a ~ b ~ 0.5 for every architecture (section 4.3).
    assert opt.a + opt.b == pytest.approx(1.0, abs=1e-15)
    assert 0.45 < opt.a < 0.55


def test_allocation_is_the_constrained_minimum():
    fit = _paper_fit("GemNet-OC")
    kappa = 35.18
    opt = compute_optimal(fit, kappa)
    for C in (1e16, 1e19, 1e22):
        N, D = opt.N_opt(C), opt.D_opt(C)
        assert 3 * kappa * N * D == pytest.approx(C, rel=1e-12)
        # eq. 7: the loss at the optimum is F_c C^-gamma_c.
        assert opt.loss(C) == pytest.approx(sum_power_law(N, D, 0.0, fit.A, fit.B, fit.alpha, fit.beta),
                                            rel=1e-12)
        # N* minimises L along the constraint: a dense scan never does better.
        Ns = N * np.geomspace(0.2, 5, 2001)
        scan = sum_power_law(Ns, C / (3 * kappa * Ns), 0.0, fit.A, fit.B, fit.alpha, fit.beta)
        assert scan.min() >= opt.loss(C) * (1 - 1e-12)
        assert Ns[np.argmin(scan)] == pytest.approx(N, rel=0.01)


def test_compute_unit_changes_only_F_c():
    fit = _paper_fit("eSEN")
    o1 = compute_optimal(fit, 74.36)
    o15 = compute_optimal(fit, 74.36, compute_unit=1e15)
    assert o15.F_c == pytest.approx(o1.F_c * 1e15**-o1.gamma_c, rel=1e-12)
    assert o15.N_opt(2.0) == pytest.approx(o1.N_opt(2e15), rel=1e-12)
    assert o15.loss(2.0) == pytest.approx(o1.loss(2e15), rel=1e-12)
    assert (o1.a, o1.b, o1.G, o1.gamma_c) == (o15.a, o15.b, o15.G, o15.gamma_c)


def test_L_inf_is_carried_into_the_frontier_loss():
    fit = dataclasses.replace(_paper_fit("MPNN"), L_inf=0.02)
    opt = compute_optimal(fit, 2.33)
    C = 1e20
    assert opt.loss(C) == pytest.approx(
        sum_power_law(opt.N_opt(C), opt.D_opt(C), 0.02, fit.A, fit.B, fit.alpha, fit.beta), rel=1e-12)


def test_intervals_are_propagated_from_bootstrap_draws():
    runs = synthetic_runs(np.geomspace(3e5, 8e6, 5), D_max=9.2e8, A=10**2.109, B=10**3.261,
                          alpha=0.524, beta=0.499, kappa=35.18, noise=0.02, seed=0)
    fit = fit_sum_power_law(runs.N, runs.D, runs.loss, L_inf=0.0, n_bootstrap=40, seed=1, n_starts=4)
    opt = compute_optimal(fit, 35.18, compute_unit=1e15)
    assert set(opt.ci) == {"a", "b", "G", "F_c", "gamma_c"}
    s = fit.samples
    g = s["alpha"] * s["beta"] / (s["alpha"] + s["beta"])
    np.testing.assert_allclose(opt.samples["gamma_c"], g, rtol=1e-14)
    assert opt.ci["gamma_c"] == pytest.approx(tuple(np.quantile(g, [0.025, 0.975])), rel=1e-14)
    for k in opt.ci:
        lo, hi = opt.ci[k]
        assert lo <= getattr(opt, k) <= hi
    # A hand-built fit has no draws and no intervals.
    assert compute_optimal(_paper_fit("eSEN"), 74.36).ci == {}


def test_consistency_on_synthetic_runs():
    # Many model sizes make the discrete frontier close to the continuous optimum, so the frontier
    # fit (eq. 4) and the derived law (eq. 7) must agree.
    kappa = 28.09
    runs = synthetic_runs(np.geomspace(2e5, 2e7, 40), D_max=2e9, fractions=np.geomspace(0.01, 1, 40),
                          A=10**1.582, B=10**2.750, alpha=0.387, beta=0.394, kappa=kappa, noise=0.0)
    x = runs.flops / 1e15
    idx = pareto_frontier(x, runs.loss)
    pf = fit_power_law(x[idx], runs.loss[idx], n_bootstrap=50)
    sf = SumPowerLawFit(L_inf=0.0, A=10**1.582, B=10**2.750, alpha=0.387, beta=0.394)
    cons = consistency(pf, sf, kappa, compute_unit=1e15)
    assert cons.gamma_c_sum == pytest.approx(0.387 * 0.394 / (0.387 + 0.394), rel=1e-12)
    assert abs(cons.gamma_c_difference) < 0.005
    assert cons.F_c_ratio == pytest.approx(1.0, abs=0.03)
    assert cons.ci_frontier["gamma_c"] == pf.ci["gamma"]
    assert cons.gamma_c_intervals_overlap is None  # the hand-built sum fit has no intervals


def test_results_are_frozen():
    opt = compute_optimal(_paper_fit("eSEN"), 74.36)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opt.a = 0.5  # type: ignore[misc]
    assert isinstance(opt, ComputeOptimal)


def test_bad_input():
    fit = _paper_fit("eSEN")
    with pytest.raises(ValueError, match="kappa must be in"):
        compute_optimal(fit, 0.0)
    with pytest.raises(ValueError, match="kappa must be in"):
        compute_optimal(fit, float("nan"))
    with pytest.raises(TypeError, match="kappa must be a real number"):
        compute_optimal(fit, "74")
    with pytest.raises(ValueError, match="compute_unit must be in"):
        compute_optimal(fit, 74.36, compute_unit=-1.0)
    with pytest.raises(TypeError, match="fit must be a SumPowerLawFit"):
        compute_optimal({"A": 1.0}, 74.36)
    with pytest.raises(ValueError, match=r"fit.alpha must be positive"):
        compute_optimal(dataclasses.replace(fit, alpha=0.0), 74.36)
    with pytest.raises(ValueError, match="C must be finite and positive"):
        compute_optimal(fit, 74.36).N_opt(-1.0)
    with pytest.raises(TypeError, match="frontier_fit must be a PowerLawFit"):
        consistency(fit, fit, 74.36)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        compute_optimal(fit, 74.36)  # no warnings for a clean input
