"""The study's report (``report.md``, ``report.json``) and figures (paper figures 1, 3 and 5).

``report.md`` starts with the exponent table, one row per family, in this fixed form (parsed by
:func:`parse_exponent_table`)::

    | family | runs | N | D_max | kappa | gamma_c (eq. 4) | gamma_c (eq. 7) | alpha | beta | gamma_h | a | b |
    | spherical | 3 | 2.2k-9.7k | 1.2e+05 | 17.5 | 0.31 [0.22, 0.40] | ... |

Each cell with an interval is ``value [low, high]`` (95% bootstrap percentile interval), or ``n/a``.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_report", "write_figures", "parse_exponent_table", "EXPONENT_COLUMNS"]

EXPONENT_COLUMNS = ("family", "runs", "N", "D_max", "kappa", "gamma_c (eq. 4)", "gamma_c (eq. 7)", "alpha", "beta",
                    "gamma_h", "a", "b")
_LABEL = {"unconstrained": "MPNN without symmetry constraint", "directional": "GemNet-OC-like, invariant angles",
          "cartesian": "MC-EGNN-like, Cartesian vectors", "spherical": "eSEN-like, spherical tensors"}


def _num(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:.3g}"


def _ci(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if ci is None:
        return f"{value:.3f}"
    lo, hi = ci
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def _si(n: float) -> str:
    for scale, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{p}"
    return f"{n:.3g}"


def _cells(fit: Any, runs: Any) -> dict[str, str]:
    kinds = runs.extra["kind"].astype(str)
    m = kinds == fit.kind
    n_range = f"{_si(runs.N[m].min())}-{_si(runs.N[m].max())}" if m.any() else "n/a"
    d_max = f"{runs.D[m].max():.3g}" if m.any() else "n/a"
    fr, fh, sl, co, op = fit.frontier, fit.frontier_hours, fit.sum_law, fit.consistency, fit.optimum
    return {
        "family": fit.kind,
        "runs": str(fit.n_runs),
        "N": n_range,
        "D_max": d_max,
        "kappa": _num(fit.kappa),
        "gamma_c (eq. 4)": _ci(fr.gamma, fr.ci.get("gamma")) if fr is not None else "n/a",
        "gamma_c (eq. 7)": _ci(co.gamma_c_sum, co.ci_sum.get("gamma_c")) if co is not None else
        (_ci(op.gamma_c, op.ci.get("gamma_c")) if op is not None else "n/a"),
        "alpha": _ci(sl.alpha, sl.ci.get("alpha")) if sl is not None else "n/a",
        "beta": _ci(sl.beta, sl.ci.get("beta")) if sl is not None else "n/a",
        "gamma_h": _ci(fh.gamma, fh.ci.get("gamma")) if fh is not None else "n/a",
        "a": _ci(op.a, op.ci.get("a")) if op is not None else "n/a",
        "b": _ci(op.b, op.ci.get("b")) if op is not None else "n/a",
    }


def exponent_table(fits: Sequence[Any], runs: Any) -> list[str]:
    """The markdown exponent table (header, rule, one row per family)."""
    lines = ["| " + " | ".join(EXPONENT_COLUMNS) + " |", "|" + "---|" * len(EXPONENT_COLUMNS)]
    for fit in fits:
        c = _cells(fit, runs)
        lines.append("| " + " | ".join(c[k] for k in EXPONENT_COLUMNS) + " |")
    return lines


def parse_exponent_table(text: str) -> dict[str, dict[str, Any]]:
    """Read the exponent table back from ``report.md`` text.

    Returns:
        family -> column -> value: ``None`` for ``n/a``; ``(value, low, high)`` for cells with an interval;
        a float for plain numbers; the text otherwise.

    Raises:
        ValueError: no exponent table, or a malformed row.
    """
    lines = text.splitlines()
    header = "| " + " | ".join(EXPONENT_COLUMNS) + " |"
    try:
        start = lines.index(header)
    except ValueError:
        raise ValueError("no exponent table found (its header line is missing)") from None
    out: dict[str, dict[str, Any]] = {}
    cell_ci = re.compile(r"^(-?[\d.eE+-]+) \[(-?[\d.eE+-]+|-?inf|nan), (-?[\d.eE+-]+|-?inf|nan)\]$")
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(EXPONENT_COLUMNS):
            raise ValueError(f"malformed exponent-table row: {line!r}")
        row: dict[str, Any] = {}
        for k, c in zip(EXPONENT_COLUMNS, cells):
            m = cell_ci.match(c)
            if c == "n/a":
                row[k] = None
            elif m:
                row[k] = tuple(float(x) for x in m.groups())
            else:
                try:
                    row[k] = float(c)
                except ValueError:
                    row[k] = c
        out[str(row["family"])] = row
    if not out:
        raise ValueError("the exponent table has no rows")
    return out


def _kendall(order: Sequence[str], reference: Sequence[str]) -> float:
    """Kendall's tau between two rankings of the same items (1 = same order)."""
    pos = {k: i for i, k in enumerate(reference)}
    items = [k for k in order if k in pos]
    n = len(items)
    if n < 2:
        return math.nan
    s = 0
    for i in range(n):
        for j in range(i + 1, n):
            s += 1 if pos[items[i]] < pos[items[j]] else -1
    return s / (n * (n - 1) / 2)


def write_report(out: Path, *, config: Any, data_name: str, n_train: int, n_train_atoms: int, n_val: int,
                 runs: Any, results: Sequence[Any], fits: Sequence[Any], ranking: Sequence[str],
                 figures: Sequence[Path], plan: Mapping[str, Any], seconds: float,
                 kappa_notes: Mapping[str, Sequence[str]]) -> Path:
    """Write ``report.md`` and ``report.json`` into ``out``; returns the path of ``report.md``."""
    from nnip_scaling.train.study import _PAPER_ALPHA, _PAPER_BETA, PAPER_GAMMA_C, machine_description

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Scaling study",
        "",
        f"{now}; {data_name}: {n_train:,} training configurations ({n_train_atoms:,} atoms), {n_val} validation "
        f"configurations; budget {config.minutes:g} min, took {seconds / 60:.1f} min; {machine_description()}.",
        "",
        "## Exponents",
        "",
        "Compute exponent γ_c fitted on the loss–FLOPs Pareto frontier (eq. 4, L_∞ = 0, compute in PFLOPs) and "
        "derived from the sum law (eq. 7: αβ/(α+β)); α, β of the sum law L = A N^-α + B D^-β (eq. 5); γ_h on "
        "the loss–hours frontier; a, b of the compute-optimal allocation N* ∝ C^a, D* ∝ C^b (section 4.3). "
        f"Brackets: {100 * 0.95:.0f}% bootstrap intervals ({config.n_bootstrap} resamples; the sum law resamples "
        f"whole runs). The first {100 * config.drop_first:g}% of each run is dropped before fitting.",
        "",
    ]
    lines += exponent_table(fits, runs)
    lines += ["", "## Ranking", ""]
    if ranking:
        paper_order = [k for k in sorted(PAPER_GAMMA_C, key=lambda k: -PAPER_GAMMA_C[k]) if k in ranking]
        by_gamma = {f.kind: f for f in fits}
        for i, k in enumerate(ranking, 1):
            f = by_gamma[k]
            lines.append(f"{i}. {k} ({_LABEL[k]}): γ_c = {f.gamma_c:.3f} (eq. 4), {_num(f.gamma_c_derived)} (eq. 7); "
                         f"paper: {PAPER_GAMMA_C[k]:.3f}")
        tau = _kendall(ranking, paper_order)
        lines += ["", f"Paper's order by γ_c (table 1): {' > '.join(paper_order)}. Kendall τ between this study's "
                  f"ranking and the paper's: {_num(tau)} (1 = same order)."]
        derived = [f for f in fits if math.isfinite(f.gamma_c_derived)]
        if len(derived) >= 2:
            order2 = [f.kind for f in sorted(derived, key=lambda f: -f.gamma_c_derived)]
            lines.append(f"Ranking by the derived γ_c (eq. 7): {' > '.join(order2)}.")
    else:
        lines.append("No family has a frontier fit (see the notes).")
    lines += ["", "## Runs", "", "| run | N | D | steps | first loss | final loss | hours | stop |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results:
        first = r.rows[0].loss if r.rows else math.nan
        lines.append(f"| {r.run_id} | {r.n_params:,} | {r.tokens:,} | {r.steps} | {first:.4f} | {r.final_loss:.4f} | "
                     f"{r.hours:.4f} | {r.stop_reason} |")
    lines += ["", "Paper values for reference (table 7): "
              + "; ".join(f"{k}: α {_PAPER_ALPHA[k]}, β {_PAPER_BETA[k]}" for k in PAPER_GAMMA_C) + "."]
    notes = []
    for f in fits:
        for n in f.notes:
            notes.append(f"- {f.kind}: {n}")
        for n in kappa_notes.get(f.kind, ()):
            notes.append(f"- {f.kind} (κ): {n}")
    for r in results:
        if r.stop_reason not in ("tokens",):
            notes.append(f"- {r.run_id} stopped on {r.stop_reason!r} before its token budget")
    lines += ["", "## Notes", ""]
    lines += notes or ["- none"]
    lines += ["", "Short CPU runs give noisy exponents; compare them with their intervals, not as point values.",
              "Files: `runs.csv` (all learning curves, readable by `nnip_scaling.scaling.load_runs`), "
              "`runs/<run>/` (per-run log and checkpoint), `config.toml`, `plan.json`, `report.json`."]
    if figures:
        lines += ["", "## Figures", ""]
        for p in figures:
            lines.append(f"![{p.stem}]({p.name})")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "report.json").write_text(json.dumps(_as_json(fits, ranking, plan, seconds), indent=1, default=float))
    return path


def _fit_json(obj: Any, symbols: Sequence[str]) -> dict[str, Any] | None:
    if obj is None:
        return None
    d = {k: float(getattr(obj, k)) for k in symbols}
    d["ci"] = {k: [float(x) for x in v] for k, v in getattr(obj, "ci", {}).items()}
    return d


def _as_json(fits: Sequence[Any], ranking: Sequence[str], plan: Mapping[str, Any], seconds: float) -> dict:
    fam = {}
    for f in fits:
        fam[f.kind] = {
            "kappa": f.kappa, "n_runs": f.n_runs,
            "frontier": _fit_json(f.frontier, ("F", "gamma", "L_inf")),
            "frontier_hours": _fit_json(f.frontier_hours, ("F", "gamma", "L_inf")),
            "sum_law": _fit_json(f.sum_law, ("L_inf", "A", "B", "alpha", "beta")),
            "compute_optimal": _fit_json(f.optimum, ("a", "b", "G", "F_c", "gamma_c")),
            "notes": list(f.notes),
        }
    return {"families": fam, "ranking": list(ranking), "plan": dict(plan), "seconds": seconds}


# ----------------------------------------------------------------------------------------------------------
# figures


def _tidy(ax: Any) -> None:
    """Readable log axes: no minor labels on x; plain numbers on a y axis spanning less than a decade."""
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    lo, hi = ax.get_ylim()
    if ax.get_yscale() == "log" and lo > 0 and hi / lo < 10:
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.4g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.4g"))


def write_figures(out: Path, prepared: Any, fits: Sequence[Any]) -> tuple[Path, ...]:
    """Figures 1, 3 and 5 of the paper for this study, as PNG files in ``out``.

    * ``fig1_compute.png``: the frontier fits of all families on common axes, FLOPs (left) and hours (right);
    * ``fig3_frontiers.png``: per family, every evaluation, the frontier and its fit (top FLOPs, bottom hours);
    * ``fig5_sum_law.png``: per family, loss vs tokens per model size and loss vs parameters, with the sum law.

    Raises:
        ImportError: matplotlib is missing (``pip install 'nnip_scaling[plot]'``).
    """
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'nnip_scaling[plot]'") from None
    from nnip_scaling.scaling.plot import plot_frontier, plot_sum_law
    from nnip_scaling.train.study import PFLOP

    kinds = prepared.extra["kind"].astype(str)
    written = []
    colours = {"unconstrained": "C0", "cartesian": "C1", "directional": "C2", "spherical": "C3"}

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for f in fits:
        m = kinds == f.kind
        if not m.any():
            continue
        fam = prepared.select(m)
        for ax, x, fit, pts in ((axes[0], fam.flops / PFLOP, f.frontier, f.frontier_points),
                                (axes[1], fam.hours, f.frontier_hours, f.hours_points)):
            idx = np.asarray(pts, dtype=int)
            if idx.size:
                ax.scatter(x[idx], fam.loss[idx], s=10, color=colours[f.kind])
            if fit is not None and idx.size:
                xs = np.geomspace(x[idx].min(), x[idx].max(), 100)
                ax.plot(xs, fit.predict(xs), color=colours[f.kind], lw=1.5,
                        label=f"{f.kind}: $\\gamma$ = {fit.gamma:.3f}")
    for ax, xl in ((axes[0], "training compute (PFLOPs)"), (axes[1], "training time (hours)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel("validation loss (eq. 1)")
        ax.legend(fontsize="small")
    axes[0].set_title("FLOPs-optimal frontier")
    axes[1].set_title("time-optimal frontier")
    for ax in axes:
        _tidy(ax)
    p = out / "fig1_compute.png"
    fig.savefig(p, dpi=80)
    written.append(p)

    present = [f for f in fits if (kinds == f.kind).any()]
    if present:
        fig = Figure(figsize=(3.4 * len(present), 6), layout="constrained")
        axes = fig.subplots(2, len(present), squeeze=False)
        for j, f in enumerate(present):
            fam = prepared.select(kinds == f.kind)
            for i, (x, fit, pts, xl) in enumerate(((fam.flops / PFLOP, f.frontier, f.frontier_points, "PFLOPs"),
                                                   (fam.hours, f.frontier_hours, f.hours_points, "hours"))):
                ax = axes[i, j]
                plot_frontier(x, fam.loss, fit, frontier=np.asarray(pts, dtype=int) if pts else None, ax=ax,
                              xlabel=xl)
                ax.set_title(f.kind, fontsize="medium")
                ax.legend(fontsize="xx-small")
                _tidy(ax)
        p = out / "fig3_frontiers.png"
        fig.savefig(p, dpi=70)
        written.append(p)

    with_sum = [f for f in present if f.sum_law is not None]
    if with_sum:
        fig = Figure(figsize=(3.4 * len(with_sum), 6), layout="constrained")
        axes = fig.subplots(2, len(with_sum), squeeze=False)
        for j, f in enumerate(with_sum):
            fam = prepared.select(kinds == f.kind)
            plot_sum_law(fam.N, fam.D, fam.loss, f.sum_law, axes=(axes[0, j], axes[1, j]))
            axes[0, j].set_title(f"{f.kind}: $\\beta$ = {f.sum_law.beta:.3f}", fontsize="medium")
            axes[1, j].set_title(f"{f.kind}: $\\alpha$ = {f.sum_law.alpha:.3f}", fontsize="medium")
            _tidy(axes[0, j])
            _tidy(axes[1, j])
        p = out / "fig5_sum_law.png"
        fig.savefig(p, dpi=70)
        written.append(p)
    return tuple(written)
