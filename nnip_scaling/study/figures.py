"""The study's figures, after the paper's figures 1, 3 and 5 (matplotlib, extra ``plot``).

* ``fig1_compute.png``: the frontier fits of all families on common axes, FLOPs (left) and hours (right);
* ``fig3_frontiers.png``: per family, every evaluation, the frontier and its fit (top FLOPs, bottom hours);
* ``fig5_sum_law.png``: per family, loss against data size for each model size (top) and against model
  size at a few data sizes (bottom), each with the sum law evaluated at the same (N, D): every curve
  passes through the points it describes when the law fits them. A panel whose exponent failed a sanity
  gate has a red title: a law with :math:`\alpha` at a bound is flat (or a step) in N by construction,
  and cannot pass through points in which wider models lose.

Log axes are labelled at 1-2-5 steps (or at plain linear steps when they span less than a factor 3), so
values can be read off.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_figures", "sum_law_figure", "log_axes"]

_COLOURS = {"unconstrained": "C0", "cartesian": "C1", "directional": "C2", "spherical": "C3"}
_DPI = 100


def _label(v: float, _pos: Any = None) -> str:
    """Short tick and legend labels: 0.5, 1.25, 500, 2k, 34.1k, 1.2M, 3e-6."""
    if v == 0:
        return "0"
    a = abs(v)
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"{v / scale:.3g}{prefix}"
    if a >= 1e-2:
        return f"{v:.3g}"
    mant, exp = f"{v:.2e}".split("e")
    return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"


def _readable_locator() -> Any:
    """A log-axis locator that picks its ticks at draw time, from the final limits: linear steps on a range
    of less than a factor 3, then 1-1.5-2-3-5-7, 1-2-3-5 and 1-2-5 steps as the range grows, decades beyond
    four decades."""
    from matplotlib.ticker import Locator, LogLocator, MaxNLocator

    class _Readable(Locator):
        def __call__(self) -> Any:
            lo, hi = sorted(self.axis.get_view_interval())
            return self.tick_values(lo, hi)

        def tick_values(self, vmin: float, vmax: float) -> Any:
            if vmin <= 0 or vmax / vmin < 3:
                return MaxNLocator(nbins=5).tick_values(vmin, vmax)
            r = vmax / vmin
            subs = ((1.0, 1.5, 2.0, 3.0, 5.0, 7.0) if r < 10 else (1.0, 2.0, 3.0, 5.0) if r < 100 else
                    (1.0, 2.0, 5.0) if r < 1e4 else (1.0,))
            return LogLocator(base=10, subs=subs).tick_values(vmin, vmax)

    return _Readable()


def log_axes(ax: Any) -> None:
    """Log scale on both axes with readable tick labels (chosen from the final limits when drawn)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(_readable_locator())
        axis.set_major_formatter(FuncFormatter(_label))
        axis.set_minor_formatter(NullFormatter())


def _figure(nrows: int, ncols: int, width: float, height: float) -> tuple[Any, Any]:
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'nnip_scaling[plot]'") from None
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _fig1(out: Path, fits: Mapping[str, Any], pflop: float) -> Path:
    fig, axes = _figure(1, 2, 10, 4.2)
    for f in fits.values():
        fam = f.prepared
        for ax, x, fit, pts in ((axes[0, 0], fam.flops / pflop, f.frontier, f.frontier_points),
                                (axes[0, 1], fam.hours, f.frontier_hours, f.hours_points)):
            idx = np.asarray(pts, dtype=int)
            if x is None or not idx.size:
                continue
            colour = _COLOURS.get(f.label, "k")
            ax.scatter(x[idx], fam.loss[idx], s=12, color=colour)
            if fit is not None:
                xs = np.geomspace(x[idx].min(), x[idx].max(), 100)
                ax.plot(xs, fit.predict(xs), color=colour, lw=1.5, label=f"{f.label}: γ = {fit.gamma:.3f}")
    for ax, xl, title in ((axes[0, 0], "training compute (PFLOPs)", "FLOPs-optimal frontier"),
                          (axes[0, 1], "training time (hours)", "time-optimal frontier")):
        log_axes(ax)
        ax.set_xlabel(xl)
        ax.set_ylabel("validation loss (eq. 1)")
        ax.set_title(title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    p = out / "fig1_compute.png"
    fig.savefig(p, dpi=_DPI)
    return p


def _fig3(out: Path, fits: Mapping[str, Any], pflop: float) -> Path:
    from nnip_scaling.scaling.plot import plot_frontier

    present = list(fits.values())
    fig, axes = _figure(2, len(present), 4.2 * len(present), 7.5)
    for j, f in enumerate(present):
        fam = f.prepared
        for i, (x, fit, pts, xl) in enumerate(((fam.flops / pflop, f.frontier, f.frontier_points, "PFLOPs"),
                                               (fam.hours, f.frontier_hours, f.hours_points, "hours"))):
            ax = axes[i, j]
            if x is None:
                ax.set_visible(False)
                continue
            plot_frontier(x, fam.loss, fit, frontier=np.asarray(pts, dtype=int) if pts else None, ax=ax, xlabel=xl)
            ax.set_title(f.label, fontsize="medium")
            ax.legend(fontsize="small")
            log_axes(ax)
    p = out / "fig3_frontiers.png"
    fig.savefig(p, dpi=_DPI)
    return p


def _slices(D: np.ndarray, N: np.ndarray, k: int = 4) -> list[float]:
    """Up to ``k`` data sizes, log-spaced, among those every model size logged."""
    common = set(np.unique(D[N == N.min()]).tolist())
    for n in np.unique(N):
        common &= set(np.unique(D[N == n]).tolist())
    common_d = np.array(sorted(common))
    if not len(common_d):
        return []
    targets = np.geomspace(common_d[0], common_d[-1], min(k, len(common_d)))
    picks = sorted({float(common_d[np.argmin(np.abs(np.log(common_d) - np.log(t)))]) for t in targets})
    return picks


def _title(ax: Any, fit: Any, symbol: str, text: str) -> None:
    """A panel title; in red, with "(gate failed)", when a sanity gate invalidates ``symbol``."""
    failed = fit.failures(symbol)
    ax.set_title(text + (" (gate failed)" if failed else ""), fontsize="medium", color="C3" if failed else "k")


def sum_law_figure(fits: Mapping[str, Any]) -> Any:
    """Figure 5 as a matplotlib ``Figure`` (None when no family has a sum-law fit): per family, loss vs D per
    model size (top row) and loss vs N at up to four data sizes logged by every size (bottom row), points
    and the sum law at the same (N, D) in the same colour."""
    from nnip_scaling.scaling.plot import _colours

    with_sum = [f for f in fits.values() if f.sum_law is not None]
    if not with_sum:
        return None
    fig, axes = _figure(2, len(with_sum), 3.8 * len(with_sum), 7)
    for j, f in enumerate(with_sum):
        fam, law = f.prepared, f.sum_law
        N, D, y = fam.N, fam.D, fam.loss
        sizes = np.unique(N)
        ax = axes[0, j]
        for n, col in zip(sizes, _colours(len(sizes))):
            m = N == n
            ax.scatter(D[m], y[m], s=10, color=col)
            ds = np.geomspace(D[m].min(), D[m].max(), 100)
            ax.plot(ds, law.predict(n, ds), color=col, lw=1.2, label=f"N = {_label(n)}")
        ax.set_xlabel("D (atoms seen)")
        _title(ax, f, "beta", f"{f.label}: β = {law.beta:.3f}")
        ax = axes[1, j]
        slices = _slices(D, N)
        for d, col in zip(slices, _colours(len(slices))):
            m = D == d
            order = np.argsort(N[m])
            ax.scatter(N[m][order], y[m][order], s=14, color=col)
            ns = np.geomspace(sizes.min(), sizes.max(), 100)
            ax.plot(ns, law.predict(ns, d), color=col, lw=1.2, label=f"D = {_label(d)}")
        ax.set_xlabel("N (parameters)")
        _title(ax, f, "alpha", f"{f.label}: α = {law.alpha:.3f}")
        for ax in axes[:, j]:
            ax.set_ylabel("validation loss")
            log_axes(ax)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize="small")
    return fig


def _fig5(out: Path, fits: Mapping[str, Any]) -> Path | None:
    fig = sum_law_figure(fits)
    if fig is None:
        return None
    p = out / "fig5_sum_law.png"
    fig.savefig(p, dpi=_DPI)
    return p


def write_figures(out: Path, fits: Mapping[str, Any], *, pflop: float = 1e15) -> tuple[Path, ...]:
    """Write figures 1, 3 and 5 for the analysed families (``fits``: family -> ``RunAnalysis``) into ``out``.

    Returns:
        the paths written.

    Raises:
        ImportError: matplotlib is missing (``pip install 'nnip_scaling[plot]'``).
    """
    _figure(1, 1, 1, 1)  # fails early, naming the extra, when matplotlib is missing
    if not fits:
        return ()
    written = [_fig1(out, fits, pflop), _fig3(out, fits, pflop)]
    p5 = _fig5(out, fits)
    return tuple(written + ([p5] if p5 is not None else []))
