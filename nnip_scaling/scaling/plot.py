"""Plots of scaling-law fits (needs matplotlib: ``pip install 'nnip_scaling[plot]'``).

* :func:`plot_frontier`: all evaluation points, the Pareto frontier and the power-law fit with its
  bootstrap band, log-log (paper fig. 1 and 3).
* :func:`plot_sum_law`: loss against ``D`` per model size and against ``N`` at the largest data sizes,
  with the sum-law fit (paper fig. 5).
* :func:`plot_compute_optimal`: ``N*(C)`` and ``D*(C)`` with propagated bands (paper fig. 6).
* :func:`plot_report`: the four panels in one figure, written to a file (used by the CLI).

Every function draws on the ``Axes`` it is given, or on a new ``matplotlib.figure.Figure`` (no pyplot
state is touched), and returns the axes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from nnip_scaling.scaling.allocation import ComputeOptimal
from nnip_scaling.scaling.fit import PowerLawFit, SumPowerLawFit

__all__ = ["plot_frontier", "plot_sum_law", "plot_compute_optimal", "plot_report"]


def _figure(nrows: int = 1, ncols: int = 1, **kw):
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
        raise ImportError("plotting needs matplotlib: pip install 'nnip_scaling[plot]'") from None
    fig = Figure(**kw)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'nnip_scaling[plot]'") from None


def plot_frontier(compute: ArrayLike, loss: ArrayLike, fit: PowerLawFit | None = None, *,
                  frontier: ArrayLike | None = None, ax=None, label: str = "",
                  xlabel: str = "compute") -> object:
    """Scatter of every (compute, loss) point, the frontier highlighted, and the fit with its band.

    Args:
        compute, loss: ``[n]`` all evaluation points (pass the values the fit was made on).
        fit: optional :class:`PowerLawFit` of the frontier; drawn with its bootstrap band if any.
        frontier: optional ``[m]`` indices of the frontier points (from :func:`pareto_frontier`).
        ax: matplotlib Axes to draw on (default: a new figure).
        label: legend label of the fit.
        xlabel: x-axis label (e.g. ``"PFLOPs"``).

    Returns:
        the Axes.
    """
    _require_matplotlib()
    if ax is None:
        _, axes = _figure(figsize=(5, 4), layout="constrained")
        ax = axes[0, 0]
    c = np.asarray(compute, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    ax.scatter(c, y, s=6, color="0.75", label="all evaluations", zorder=1)
    if frontier is not None:
        idx = np.asarray(frontier)
        ax.scatter(c[idx], y[idx], s=12, color="C0", label="Pareto frontier", zorder=2)
    if fit is not None:
        xs = np.geomspace(c.min(), c.max(), 200)
        text = label or f"$L = {fit.F:.3g}\\,C^{{-{fit.gamma:.3f}}}$" + (
            f" + {fit.L_inf:.3g}" if fit.L_inf else "")
        ax.plot(xs, fit.predict(xs), color="C3", lw=1.5, label=text, zorder=3)
        if fit.samples:
            lo, hi = fit.band(xs)
            ax.fill_between(xs, lo, hi, color="C3", alpha=0.2, lw=0,
                            label=f"{fit.confidence:.0%} bootstrap band", zorder=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation loss")
    ax.legend(fontsize="small")
    return ax


def plot_sum_law(N: ArrayLike, D: ArrayLike, loss: ArrayLike, fit: SumPowerLawFit, *,
                 axes=None) -> object:
    """Two panels: loss vs ``D`` coloured by model size, and loss vs ``N`` at each run's last ``D``.

    Args:
        N, D, loss: ``[n]`` the triplets the law was fitted on.
        fit: the :class:`SumPowerLawFit`.
        axes: a pair of Axes (default: a new figure with two panels).

    Returns:
        the pair of Axes.
    """
    _require_matplotlib()
    if axes is None:
        _, ax = _figure(1, 2, figsize=(10, 4), layout="constrained")
        axes = ax[0]
    ax_d, ax_n = axes
    N = np.asarray(N, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    sizes = np.unique(N)
    colours = _colours(len(sizes))
    for n, col in zip(sizes, colours, strict=True):
        m = N == n
        ax_d.scatter(D[m], y[m], s=8, color=col)
        ds = np.geomspace(D[m].min(), D[m].max(), 100)
        ax_d.plot(ds, fit.predict(n, ds), color=col, lw=1, label=f"N = {n:.3g}")
    ax_d.set_xscale("log")
    ax_d.set_yscale("log")
    ax_d.set_xlabel("D (tokens)")
    ax_d.set_ylabel("validation loss")
    ax_d.set_title(f"$\\beta$ = {fit.beta:.3f}")
    if len(sizes) <= 10:
        ax_d.legend(fontsize="x-small")
    # Loss vs N at the largest data size reached by every model size (the last point of each run).
    d_common = min(D[N == n].max() for n in sizes)
    last = np.array([y[(N == n)][np.argmin(np.abs(D[N == n] - d_common))] for n in sizes])
    ax_n.scatter(sizes, last, s=12, color="C0", label=f"D = {d_common:.3g}")
    ns = np.geomspace(sizes.min(), sizes.max(), 100)
    ax_n.plot(ns, fit.predict(ns, d_common), color="C3", lw=1.5, label="sum-law fit")
    ax_n.set_xscale("log")
    ax_n.set_yscale("log")
    ax_n.set_xlabel("N (parameters)")
    ax_n.set_ylabel("validation loss")
    ax_n.set_title(f"$\\alpha$ = {fit.alpha:.3f}")
    ax_n.legend(fontsize="small")
    return axes


def plot_compute_optimal(opt: ComputeOptimal, C: ArrayLike, *, axes=None,
                         xlabel: str = "compute") -> object:
    """``N*(C)`` and ``D*(C)`` (paper fig. 6) with bands propagated from the bootstrap draws.

    Args:
        opt: a :class:`ComputeOptimal`.
        C: ``[m]`` compute values in units of ``opt.compute_unit``.
        axes: a pair of Axes (default: a new figure).
        xlabel: x-axis label.

    Returns:
        the pair of Axes.
    """
    _require_matplotlib()
    if axes is None:
        _, ax = _figure(1, 2, figsize=(10, 4), layout="constrained")
        axes = ax[0]
    C = np.sort(np.asarray(C, dtype=np.float64))
    flops = C * opt.compute_unit / (3.0 * opt.kappa)
    for ax, name, curve, expo in ((axes[0], "N*", opt.N_opt(C), opt.a),
                                  (axes[1], "D*", opt.D_opt(C), opt.b)):
        ax.plot(C, curve, color="C0", lw=1.5, label=f"{name} $\\propto C^{{{expo:.3f}}}$")
        if opt.samples:
            s = opt.samples
            if name == "N*":
                draws = s["G"][:, None] * flops[None, :] ** s["a"][:, None]
            else:
                draws = flops[None, :] ** s["b"][:, None] / s["G"][:, None]
            draws = draws[np.all(np.isfinite(draws), axis=1)]
            if len(draws):
                lo, hi = np.quantile(draws, [0.025, 0.975], axis=0)
                ax.fill_between(C, lo, hi, color="C0", alpha=0.2, lw=0, label="95% band")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("parameters N*" if name == "N*" else "tokens D*")
        ax.legend(fontsize="small")
    return axes


def plot_report(path: str | os.PathLike, *, compute: ArrayLike, loss: ArrayLike, frontier: ArrayLike,
                frontier_fit: PowerLawFit, N: ArrayLike, D: ArrayLike, sum_loss: ArrayLike,
                sum_fit: SumPowerLawFit, optimum: ComputeOptimal | None = None,
                compute_label: str = "compute", title: str = "") -> Path:
    """Write a figure with the frontier, the sum-law slices and (if given) the allocation to ``path``.

    Returns:
        the path written (format from its suffix, e.g. ``.png`` or ``.pdf``).
    """
    _require_matplotlib()
    nrows = 2 if optimum is not None else 1
    fig, ax = _figure(nrows, 3, figsize=(15, 4.2 * nrows), layout="constrained")
    plot_frontier(compute, loss, frontier_fit, frontier=frontier, ax=ax[0, 0], xlabel=compute_label)
    plot_sum_law(N, D, sum_loss, sum_fit, axes=(ax[0, 1], ax[0, 2]))
    if optimum is not None:
        c = np.asarray(compute, dtype=np.float64)
        cs = np.geomspace(c.min(), c.max() * 100, 100)
        plot_compute_optimal(optimum, cs, axes=(ax[1, 0], ax[1, 1]), xlabel=compute_label)
        a = ax[1, 2]
        a.plot(cs, optimum.loss(cs), color="C3", lw=1.5,
               label=f"eq. 7: $\\gamma_c$ = {optimum.gamma_c:.3f}")
        a.plot(cs, frontier_fit.predict(cs), color="C0", lw=1.5, ls="--",
               label=f"eq. 4: $\\gamma_c$ = {frontier_fit.gamma:.3f}")
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel(compute_label)
        a.set_ylabel("loss on the compute-optimal frontier")
        a.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.9, max(n, 1))]
