"""Plots draw what they are given; without matplotlib they name the extra to install."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from nnip_scaling.scaling import compute_optimal, fit_power_law, fit_sum_power_law, pareto_frontier
from nnip_scaling.scaling.synthetic import synthetic_runs


@pytest.fixture(scope="module")
def fitted():
    runs = synthetic_runs(np.geomspace(4e5, 4e6, 4), D_max=9.2e8, A=10**3.76, B=10**5.129, alpha=0.817,
                          beta=0.753, kappa=74.36, noise=0.01, seed=0)
    x = runs.flops / 1e15
    idx = pareto_frontier(x, runs.loss)
    pf = fit_power_law(x[idx], runs.loss[idx], n_bootstrap=20)
    sf = fit_sum_power_law(runs.N, runs.D, runs.loss, L_inf=0.0, n_bootstrap=10, n_starts=2)
    return runs, x, idx, pf, sf, compute_optimal(sf, 74.36, compute_unit=1e15)


def test_plots_draw_data_fit_and_band(fitted, tmp_path):
    pytest.importorskip("matplotlib")
    from nnip_scaling.scaling.plot import plot_compute_optimal, plot_frontier, plot_report, plot_sum_law

    runs, x, idx, pf, sf, opt = fitted
    ax = plot_frontier(x, runs.loss, pf, frontier=idx, xlabel="PFLOPs")
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    offsets = [c.get_offsets() for c in ax.collections if hasattr(c, "get_offsets")]
    assert any(len(o) == len(idx) for o in offsets) and any(len(o) == len(runs) for o in offsets)
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), pf.predict(line.get_xdata()))
    axes = plot_sum_law(runs.N, runs.D, runs.loss, sf)
    assert len(axes[0].get_lines()) == 4  # one curve per model size
    axes = plot_compute_optimal(opt, np.geomspace(1, 1e4, 20))
    np.testing.assert_allclose(axes[0].get_lines()[0].get_ydata(), opt.N_opt(np.geomspace(1, 1e4, 20)))
    out = plot_report(tmp_path / "r.png", compute=x, loss=runs.loss, frontier=idx, frontier_fit=pf,
                      N=runs.N, D=runs.D, sum_loss=runs.loss, sum_fit=sf, optimum=opt)
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_missing_matplotlib_names_the_extra(fitted, monkeypatch):
    from nnip_scaling.scaling import plot

    runs, x, idx, pf, sf, opt = fitted
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'nnip_scaling\[plot\]'"):
        plot.plot_frontier(x, runs.loss, pf)
    with pytest.raises(ImportError, match=r"nnip_scaling\[plot\]"):
        plot.plot_report("x.png", compute=x, loss=runs.loss, frontier=idx, frontier_fit=pf, N=runs.N,
                         D=runs.D, sum_loss=runs.loss, sum_fit=sf)
