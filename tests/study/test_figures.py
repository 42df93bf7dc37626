"""The study's figures: fig5's curves pass through the points they describe; readable log axes."""

from __future__ import annotations

import numpy as np
import pytest

from nnip_scaling.scaling import RunLog, analyse_runs
from nnip_scaling.scaling.synthetic import synthetic_runs

pytest.importorskip("matplotlib")


def _fits():
    runs = synthetic_runs([2e3, 5e3, 1.2e4, 3e4], D_max=4e5, fractions=np.geomspace(0.05, 1, 10), A=30.0, B=60.0,
                          alpha=0.4, beta=0.35, kappa=5.0, noise=0.0, flops_per_hour=1e12)
    runs = RunLog(runs.run_id, runs.n_params, runs.tokens, runs.flops, runs.loss, runs.hours,
                  extra={**runs.extra, "kind": np.full(len(runs), "cartesian")})
    return analyse_runs(runs, n_bootstrap=10, drop_first=0.1)


def test_fig5_curves_pass_through_their_points():
    from matplotlib.colors import to_rgba

    from nnip_scaling.study.figures import sum_law_figure

    fits = _fits()
    fig = sum_law_figure(fits)
    checked = 0
    for ax in fig.axes:
        lines = {to_rgba(line.get_color()): line for line in ax.get_lines()}
        for coll in ax.collections:
            colour = to_rgba(coll.get_facecolor()[0])
            x, y = np.asarray(coll.get_offsets()).T
            line = lines[colour]  # every group of points has the curve of its own colour
            lx, ly = (np.asarray(v, dtype=float) for v in line.get_data())
            at = np.exp(np.interp(np.log(x), np.log(lx), np.log(ly)))
            np.testing.assert_allclose(at, y, rtol=2e-3)
            checked += len(x)
    # every point in the top row, and 4 data sizes x 4 model sizes in the bottom row
    assert checked == len(fits["cartesian"].prepared) + 16


def test_log_axes_label_short_ranges_and_title_flags_failed_gates(tmp_path):
    from nnip_scaling.study.figures import _label, log_axes, write_figures

    assert [_label(v) for v in (0.5, 1.25, 2000, 34100, 3e-6)] == ["0.5", "1.25", "2k", "34.1k", "3e-6"]
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    ax.plot([1e3, 1e5], [1.2, 1.3])
    log_axes(ax)
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text()]
    assert len(labels) >= 3  # a range of less than a factor 3 still gets readable ticks
    paths = write_figures(tmp_path, _fits())
    assert [p.name for p in paths] == ["fig1_compute.png", "fig3_frontiers.png", "fig5_sum_law.png"]
