"""What a scientist sees with print(): parameter tables with intervals, the objective, the warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nnip_scaling.scaling import (
    FitWarning,
    SumPowerLawFit,
    compute_optimal,
    consistency,
    fit_power_law,
    fit_sum_power_law,
    pareto_frontier,
)
from nnip_scaling.scaling.synthetic import synthetic_runs

GEMNET = dict(A=10**2.109, B=10**3.261, alpha=0.524, beta=0.499)


@pytest.fixture(scope="module")
def runs():
    return synthetic_runs(np.geomspace(3e5, 8e6, 6), D_max=9.2e8, **GEMNET, noise=0.01, seed=5, kappa=35.18)


def _table_row(text: str, name: str) -> list[str]:
    row = next(line for line in text.splitlines() if line.split() and line.split()[0] == name)
    return row.split()


def test_sum_law_summary_shows_parameters_intervals_objective(runs):
    f = fit_sum_power_law(runs.N, runs.D, runs.loss, L_inf=0.0, n_bootstrap=40, n_starts=4)
    text = str(f)
    assert text == f.summary() and "paper eq. 5" in text
    assert f"points: {len(runs)}" in text and "objective:" in text and "40 draws, 95%" in text
    cells = _table_row(text, "alpha")
    assert float(cells[1]) == pytest.approx(f.alpha, rel=1e-4)
    lo, hi = (float(c.strip("[],")) for c in cells[2:4])
    assert (lo, hi) == pytest.approx(f.ci["alpha"], rel=1e-4)
    assert _table_row(text, "L_inf")[2] == "(fixed)"
    assert "Warnings:" not in text
    # repr stays one short line
    assert "\n" not in repr(f) and repr(f).startswith("SumPowerLawFit(L_inf=0, A=") and len(repr(f)) < 200


def test_warnings_are_kept_in_the_result_and_still_emitted(runs):
    exact = synthetic_runs(np.geomspace(3e5, 8e6, 5), D_max=9.2e8, **GEMNET)  # true L_inf = 0
    with pytest.warns(FitWarning, match="L_inf sits on its lower bound") as record:
        f = fit_sum_power_law(exact.N, exact.D, exact.loss, n_bootstrap=0, n_starts=4)
    assert record[0].filename == __file__  # reported at the caller, as before
    assert len(f.warnings) == 1 and "L_inf sits on its lower bound" in f.warnings[0]
    assert "Warnings:\n[1] L_inf sits on its lower bound" in str(f)
    # The user's filters still decide: "error" raises, "ignore" is silent, the result keeps the note.
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        with pytest.raises(FitWarning):
            fit_sum_power_law(exact.N, exact.D, exact.loss, n_bootstrap=0, n_starts=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")
        quiet = fit_sum_power_law(exact.N, exact.D, exact.loss, n_bootstrap=0, n_starts=4)
    assert not caught and len(quiet.warnings) == 1


def test_power_law_and_hand_built_summaries(runs):
    p = fit_power_law(runs.flops / 1e15, runs.loss, n_bootstrap=30)
    text = str(p)
    assert "L(x) = L_inf + F x^-gamma" in text and "30 draws" in text
    assert float(_table_row(text, "gamma")[1]) == pytest.approx(p.gamma, rel=1e-4)
    hand = SumPowerLawFit(L_inf=0.0, A=10**3.760, B=10**5.129, alpha=0.817, beta=0.753)
    text = str(hand)
    assert "built by hand" in text and "no intervals" in text and "objective" not in text
    assert _table_row(text, "alpha")[1:] == ["0.817", "-"]


def test_compute_optimal_and_consistency_summaries(runs):
    f = fit_sum_power_law(runs.N, runs.D, runs.loss, L_inf=0.0, n_bootstrap=30, n_starts=4)
    opt = compute_optimal(f, 35.18, compute_unit=1e15)
    text = str(opt)
    assert "kappa: 35.18" in text and "1e+15 FLOPs" in text and "30 bootstrap draws" in text
    assert float(_table_row(text, "gamma_c")[1]) == pytest.approx(opt.gamma_c, rel=1e-4)
    assert "\n" not in repr(opt)
    idx = pareto_frontier(runs.flops / 1e15, runs.loss)
    c = consistency(fit_power_law(runs.flops[idx] / 1e15, runs.loss[idx], n_bootstrap=30), f, 35.18,
                    compute_unit=1e15)
    text = str(c)
    assert "frontier fit (eq. 4)" in text and "sum law (eq. 7)" in text
    assert ("intervals overlap" in text) == bool(c.gamma_c_intervals_overlap)


def test_run_log_prints_one_line_per_run(runs):
    text = str(runs)
    assert text.splitlines()[0] == repr(runs) == (
        f"RunLog({len(runs)} rows, 6 runs, columns={list(runs.columns)})")
    assert len(text.splitlines()) == 2 + 6
