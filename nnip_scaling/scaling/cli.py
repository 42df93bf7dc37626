"""``nnip-scaling fit RUNS.csv``: fit the paper's scaling laws to a run log and print every parameter.

Steps (paper sections 3.2, 4.1-4.3): EMA smoothing and warm-up removal per run (optional), the
loss-compute Pareto frontier and its power law (eq. 4), the sum power law on every row (eq. 5), the
compute-optimal allocation (eq. 6-7), the consistency check of table 1 (like with like: both sides with
the sum law's ``L_inf``) and the sanity gates, all by :func:`~nnip_scaling.scaling.analyse_runs`. When the
log has a ``kind`` column (a study's ``runs.csv``) or an ``arch`` column, each family is fitted on its own
(``--by`` picks another column, ``--by none`` pools every row).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from nnip_scaling._cli_args import positive_float

HELP = "fit scaling laws (frontier, sum power law, compute-optimal allocation) to a run log"


def _L_inf(text: str) -> float | str:
    if text == "fit":
        return "fit"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'fit' or a number, got {text!r}") from None


def _by(text: str) -> str | None:
    return None if text.lower() == "none" else text


def _where(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected COLUMN=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", help="run log (.csv or .jsonl): run_id, n_params, tokens, flops, "
                        "[hours], loss, free columns")
    parser.add_argument("--kappa", type=positive_float, default=None,
                        help="forward FLOPs per parameter per atom (C = 3 kappa N D); default: "
                        "inferred from the log as median(flops / (3 n_params tokens))")
    parser.add_argument("--compute", choices=("flops", "hours"), default="flops",
                        help="compute axis of the frontier (default: flops)")
    parser.add_argument("--compute-unit", type=positive_float, default=None,
                        help="unit of the compute axis (default: 1e15 = PFLOPs for flops, 1 for hours)")
    parser.add_argument("--plot", metavar="OUT.png", default=None, help="write a figure (matplotlib)")
    parser.add_argument("--json", metavar="OUT.json", default=None, help="write all results as JSON")
    parser.add_argument("--drop-first", type=float, default=0.0,
                        help="drop each run's first fraction of training (paper: 0.01-0.1)")
    parser.add_argument("--ema", type=float, default=None,
                        help="smooth each learning curve by an EMA with this factor (paper: 0.9)")
    parser.add_argument("--frontier-L-inf", type=_L_inf, default=0.0, dest="frontier_L_inf",
                        help="L_inf of the frontier power law: a value or 'fit' (default 0, as the paper)")
    parser.add_argument("--sum-L-inf", type=_L_inf, default="fit", dest="sum_L_inf",
                        help="L_inf of the sum power law: 'fit' (default) or a value")
    parser.add_argument("--huber-delta", type=float, default=1e-3,
                        help="Huber threshold of the sum-law fit on log residuals (default 1e-3)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--resample", choices=("rows", "runs", "residual"), default="rows",
                        help="bootstrap unit (default rows; runs keeps each learning curve whole; residual "
                             "keeps the design and resamples per-run residual curves)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--by", type=_by, default="auto", metavar="COLUMN",
                        help="fit each value of this column separately (default: 'kind', else 'arch'; "
                             "'none' pools all rows)")
    parser.add_argument("--where", type=_where, action="append", default=[], metavar="COL=VALUE",
                        help="keep only rows with this column value (repeatable)")


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.4e}"


def _table(title: str, fit, symbols: list[tuple[str, str]], confidence: float,
           flags: dict[str, str] | None = None) -> list[str]:
    """Rows ``symbol  value  [low, high]`` (``symbols`` = (attribute, shown name)); ``flags`` appends a
    failed-gate label to a symbol's row."""
    lines = [title, f"  {'param':<10} {'value':>12}   {confidence:.0%} CI"]
    fixed = getattr(fit, "fixed", ())
    for attr, shown in symbols:
        v = getattr(fit, attr)
        if attr in fixed:
            ci = "(fixed)"
        elif attr in fit.ci:
            lo, hi = fit.ci[attr]
            ci = f"[{_fmt(lo)}, {_fmt(hi)}]"
        else:
            ci = "(no bootstrap)"
        lines.append(f"  {shown:<10} {_fmt(v):>12}   {ci}{(flags or {}).get(attr, '')}")
    return lines


def _as_json(obj) -> dict:
    out = {}
    for k in obj.symbols:
        out[k] = getattr(obj, k)
    out["ci"] = {k: list(v) for k, v in obj.ci.items()}
    for k in ("fixed", "n_points", "objective", "n_starts", "n_agree", "confidence", "kappa",
              "compute_unit", "L_inf"):
        if hasattr(obj, k):
            v = getattr(obj, k)
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


def _compute_axis(args: argparse.Namespace) -> tuple[float, str]:
    """Unit and name of the frontier's compute axis."""
    if args.compute == "hours":
        unit = args.compute_unit or 1.0
        return unit, "hours" if unit == 1.0 else f"hours/{unit:g}"
    unit = args.compute_unit or 1e15
    return unit, "PFLOPs" if unit == 1e15 else f"FLOPs/{unit:g}"


def _group_lines(an, args: argparse.Namespace) -> tuple[list[str], dict]:
    """The printed tables and the JSON of one family's :class:`RunAnalysis`."""
    prepared = an.prepared
    unit, unit_name = _compute_axis(args)
    head = f"== {an.label}: {len(prepared)} rows from {an.n_runs} runs"
    if args.drop_first or args.ema is not None:
        head += f" (drop_first={args.drop_first:g}, ema={args.ema})"
    lines = [head, ""]
    pf = an.frontier_hours if args.compute == "hours" else an.frontier
    idx = an.hours_points if args.compute == "hours" else an.frontier_points
    sym, sub = ("H", "h") if args.compute == "hours" else ("C", "c")
    result: dict = {"n_rows": len(prepared), "n_runs": int(an.n_runs), "compute": args.compute, "compute_unit": unit,
                    "kappa": an.kappa, "frontier_points": len(idx)}
    flag = _flags(an)
    if pf is not None:
        lines += _table(f"Frontier power law (eq. 4): L({sym}) = L_inf + F_{sub} {sym}^-gamma_{sub}, {sym} in "
                        f"{unit_name}; {len(idx)} frontier points", pf,
                        [("F", f"F_{sub}"), ("gamma", f"gamma_{sub}"), ("L_inf", "L_inf")], pf.confidence,
                        flags={"gamma": flag(f"gamma_{sub}")})
        result["frontier"] = _as_json(pf)
    else:
        lines.append("Frontier power law (eq. 4): not fitted (see the warnings)")
    lines.append("")
    sf = an.sum_law
    if sf is not None:
        lines += _table(f"Sum power law (eq. 5): L(N, D) = L_inf + A N^-alpha + B D^-beta; {sf.n_points} points, "
                        f"{sf.n_agree}/{sf.n_starts} starts agree", sf,
                        [("L_inf", "L_inf"), ("A", "A"), ("B", "B"), ("alpha", "alpha"), ("beta", "beta")],
                        sf.confidence, flags={"alpha": flag("alpha"), "beta": flag("beta")})
        lines += [f"  (log10 A = {math.log10(sf.A):.3f}, log10 B = {math.log10(sf.B):.3f})", ""]
        result["sum_law"] = _as_json(sf)
    opt = an.optimum
    if opt is not None:
        lines += _table(f"Compute-optimal allocation (eq. 6-7), kappa = {an.kappa:.4g} ({an.kappa_note}); "
                        f"N* = G (C/3 kappa)^a, D* = (C/3 kappa)^b / G, L = L_inf + F_c C^-gamma_c, C in "
                        f"{'PFLOPs' if an.settings.compute_unit == 1e15 else f'FLOPs/{an.settings.compute_unit:g}'}",
                        opt, [("a", "a"), ("b", "b"), ("G", "G"), ("F_c", "F_c"), ("gamma_c", "gamma_c")],
                        sf.confidence, flags={"a": flag("a"), "b": flag("b"), "gamma_c": flag("gamma_c_sum")})
        lines.append("")
        result["compute_optimal"] = _as_json(opt)
    elif sf is not None:
        lines += ["Compute-optimal allocation: skipped (alpha or beta is 0)", ""]
    if args.compute == "hours":
        lines += ["Consistency check: skipped (it compares FLOPs laws; run with --compute flops)", ""]
    elif an.consistency is not None:
        lines += _consistency_lines(an.consistency, an.consistency_note)
        result["consistency"] = _consistency_json(an.consistency, an.consistency_note)
    elif an.consistency_note:
        lines += [f"Consistency (table 1): {an.consistency_note}", ""]
    ww = an.wider_wins
    result["gates"] = [{"name": g.name, "passed": g.passed, "message": g.message, "advice": g.advice}
                       for g in an.gates]
    result["wider_wins"] = None if ww is None else ww.fraction
    result["warnings"] = list(an.warnings)
    lines.append("Sanity gates: " + ("all passed" if not an.failed_gates else
                                     f"{len(an.failed_gates)} FAILED (numbers marked FAILED are not measurements)"))
    if ww is not None:
        lines.append(f"  {'ok    ' if ww.passed else 'FAILED'} {ww.message}")
    for w in an.warnings:
        lines.append(f"  warning: {w}")
    lines.append("")
    return lines, result


def _flags(an):
    def flag(symbol: str) -> str:
        failed = an.failures(symbol)
        return "  <- FAILED: " + ", ".join(g.name for g in failed) if failed else ""
    return flag


def _consistency_lines(cons, note: str) -> list[str]:
    def ci(d, k):
        return f"[{_fmt(d[k][0])}, {_fmt(d[k][1])}]" if k in d else ""

    overlap = cons.gamma_c_intervals_overlap
    return [
        "Consistency (table 1): frontier fit (eq. 4) vs derived from the sum law (eq. 7)",
        f"  ({note})",
        f"  {'param':<10} {'frontier eq.4':>14} {'':<22} {'sum law eq.7':>14}",
        f"  {'F_c':<10} {_fmt(cons.F_c_frontier):>14} {ci(cons.ci_frontier, 'F_c'):<22} "
        f"{_fmt(cons.F_c_sum):>14} {ci(cons.ci_sum, 'F_c')}",
        f"  {'gamma_c':<10} {_fmt(cons.gamma_c_frontier):>14} {ci(cons.ci_frontier, 'gamma_c'):<22} "
        f"{_fmt(cons.gamma_c_sum):>14} {ci(cons.ci_sum, 'gamma_c')}",
        f"  gamma_c difference (eq.7 - eq.4): {cons.gamma_c_difference:+.4f}; F_c ratio: {cons.F_c_ratio:.4f}; "
        f"intervals overlap: {'n/a' if overlap is None else ('yes' if overlap else 'NO')}",
        "",
    ]


def _consistency_json(cons, note: str) -> dict:
    return {
        "gamma_c_frontier": cons.gamma_c_frontier, "gamma_c_sum": cons.gamma_c_sum,
        "F_c_frontier": cons.F_c_frontier, "F_c_sum": cons.F_c_sum,
        "ci_frontier": {k: list(v) for k, v in cons.ci_frontier.items()},
        "ci_sum": {k: list(v) for k, v in cons.ci_sum.items()},
        "gamma_c_difference": cons.gamma_c_difference, "F_c_ratio": cons.F_c_ratio,
        "gamma_c_intervals_overlap": cons.gamma_c_intervals_overlap, "note": note,
    }


def _check_output(path: str | None, option: str) -> None:
    """Fail before any fit when ``path`` cannot be written (missing folder, a directory, no permission)."""
    if path is None:
        return
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise ValueError(f"{option} {path}: is a directory; give a file name")
    if not parent.is_dir():
        raise ValueError(f"{option} {path}: the folder {str(parent)!r} does not exist; create it or choose another path")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ValueError(f"{option} {path}: not writable")


def run(args: argparse.Namespace) -> int:
    from nnip_scaling.scaling import AnalysisSettings, analyse_runs, load_runs

    try:
        _check_output(args.json, "--json")
        _check_output(args.plot, "--plot")
        runs = load_runs(args.runs)
        for k, v in args.where:
            runs = runs.where(**{k: v})
        if args.compute == "hours" and runs.hours is None:
            raise ValueError("--compute hours needs an 'hours' column in the run log")
        unit, _ = _compute_axis(args)
        settings = AnalysisSettings(
            compute_unit=unit if args.compute == "flops" else 1e15,
            hours_unit=unit if args.compute == "hours" else 1.0, drop_first=args.drop_first, ema=args.ema,
            frontier_L_inf=args.frontier_L_inf, sum_L_inf=args.sum_L_inf, huber_delta=args.huber_delta,
            n_bootstrap=args.bootstrap, resample=args.resample, seed=args.seed, n_starts=16)
        analyses = analyse_runs(runs, by=args.by, kappa=args.kappa, settings=settings)
    except (OSError, ValueError, KeyError) as exc:
        print(f"nnip-scaling fit: error: {exc}", file=sys.stderr)
        return 2
    lines: list[str] = []
    results = {}
    for label, an in analyses.items():
        group_lines, results[label] = _group_lines(an, args)
        lines += group_lines
    print("\n".join(lines).rstrip())

    if args.json:
        payload = {"runs": str(args.runs), "settings": {
            k: v for k, v in vars(args).items() if k not in ("runs", "_run", "command")},
            "results": results}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, default=_json_default)
        print(f"wrote {args.json}")
    if args.plot:
        try:
            _plots(analyses, args)
        except (ImportError, OSError, ValueError) as exc:
            print(f"nnip-scaling fit: error: cannot write the plot: {exc}", file=sys.stderr)
            return 2
    return 0


def _plots(analyses, args: argparse.Namespace) -> None:
    from nnip_scaling.scaling.plot import plot_report

    base = Path(args.plot)
    _, unit_name = _compute_axis(args)
    for label, an in analyses.items():
        if an.sum_law is None:
            print(f"no plot for {label}: its sum law was not fitted")
            continue
        hours = args.compute == "hours"
        pf = an.frontier_hours if hours else an.frontier
        idx = list(an.hours_points if hours else an.frontier_points)
        x = an.prepared.hours / an.settings.hours_unit if hours else an.prepared.flops / an.settings.compute_unit
        path = base if len(analyses) == 1 else base.with_name(f"{base.stem}_{_safe(label)}{base.suffix}")
        plot_report(path, compute=x, loss=an.prepared.loss, frontier=idx, frontier_fit=pf, N=an.prepared.N,
                    D=an.prepared.D, sum_loss=an.prepared.loss, sum_fit=an.sum_law,
                    optimum=None if hours else an.optimum, compute_label=unit_name, title=label)
        print(f"wrote {path}")


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
