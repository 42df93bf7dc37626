"""``nnip-scaling fit RUNS.csv``: fit the paper's scaling laws to a run log and print every parameter.

Steps (paper sections 3.2, 4.1-4.3): EMA smoothing and warm-up removal per run (optional), the
loss-compute Pareto frontier and its power law (eq. 4), the sum power law on every row (eq. 5), the
compute-optimal allocation (eq. 6-7) and the consistency check of table 1. When the log has an
``arch`` column the laws are fitted per architecture.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings

HELP = "fit scaling laws (frontier, sum power law, compute-optimal allocation) to a run log"


def _L_inf(text: str) -> float | str:
    if text == "fit":
        return "fit"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'fit' or a number, got {text!r}") from None


def _where(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected COLUMN=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", help="run log (.csv or .jsonl): run_id, n_params, tokens, flops, "
                        "[hours], loss, free columns")
    parser.add_argument("--kappa", type=float, default=None,
                        help="forward FLOPs per parameter per token (C = 3 kappa N D); default: "
                        "inferred from the log as median(flops / (3 n_params tokens))")
    parser.add_argument("--compute", choices=("flops", "hours"), default="flops",
                        help="compute axis of the frontier (default: flops)")
    parser.add_argument("--compute-unit", type=float, default=None,
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
    parser.add_argument("--resample", choices=("rows", "runs"), default="rows",
                        help="bootstrap unit (default rows; runs keeps each learning curve whole)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--where", type=_where, action="append", default=[], metavar="COL=VALUE",
                        help="keep only rows with this column value (repeatable)")


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.4e}"


def _table(title: str, fit, symbols: list[tuple[str, str]], confidence: float) -> list[str]:
    """Rows ``symbol  value  [low, high]`` (``symbols`` = (attribute, shown name))."""
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
        lines.append(f"  {shown:<10} {_fmt(v):>12}   {ci}")
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


def _fit_group(runs, args, label: str, out_lines: list[str]) -> dict:
    import numpy as np

    from nnip_scaling.scaling import (
        compute_optimal,
        consistency,
        fit_power_law,
        fit_sum_power_law,
        pareto_frontier,
        prepare_runs,
    )

    prepared = prepare_runs(runs, drop_first=args.drop_first, ema=args.ema)
    if args.compute == "hours":
        if prepared.hours is None:
            raise ValueError("--compute hours needs an 'hours' column in the run log")
        raw, unit, unit_name = prepared.hours, args.compute_unit or 1.0, "hours"
    else:
        raw, unit = prepared.flops, args.compute_unit or 1e15
        unit_name = "PFLOPs" if unit == 1e15 else f"FLOPs/{unit:g}"
    if args.compute == "hours" and unit != 1.0:
        unit_name = f"hours/{unit:g}"
    x = raw / unit
    groups = prepared.run_id if args.resample == "runs" else None
    n_runs = len(np.unique(prepared.run_id))
    head = f"== {label}: {len(prepared)} rows from {n_runs} runs"
    if args.drop_first or args.ema is not None:
        head += f" (drop_first={args.drop_first:g}, ema={args.ema})"
    out_lines += [head, ""]

    idx = pareto_frontier(x, prepared.loss)
    pf = fit_power_law(x[idx], prepared.loss[idx], L_inf=args.frontier_L_inf,
                       n_bootstrap=args.bootstrap, seed=args.seed,
                       groups=None if groups is None else groups[idx])
    sym = "C" if args.compute == "flops" else "H"
    sub = "c" if args.compute == "flops" else "h"
    out_lines += _table(
        f"Frontier power law (eq. 4): L({sym}) = L_inf + F_{sub} {sym}^-gamma_{sub}, {sym} in "
        f"{unit_name}; {len(idx)} frontier points", pf,
        [("F", f"F_{sub}"), ("gamma", f"gamma_{sub}"), ("L_inf", "L_inf")], pf.confidence)
    out_lines.append("")

    sf = fit_sum_power_law(prepared.N, prepared.D, prepared.loss, L_inf=args.sum_L_inf,
                           huber_delta=args.huber_delta, n_bootstrap=args.bootstrap,
                           seed=args.seed, groups=groups)
    out_lines += _table(
        f"Sum power law (eq. 5): L(N, D) = L_inf + A N^-alpha + B D^-beta; {sf.n_points} points, "
        f"{sf.n_agree}/{sf.n_starts} starts agree", sf,
        [("L_inf", "L_inf"), ("A", "A"), ("B", "B"), ("alpha", "alpha"), ("beta", "beta")],
        sf.confidence)
    out_lines.append(f"  (log10 A = {math.log10(sf.A):.3f}, log10 B = {math.log10(sf.B):.3f})")
    out_lines.append("")

    kappas = prepared.flops / (3.0 * prepared.N * prepared.D)
    if args.kappa is None:
        kappa = float(np.median(kappas))
        spread = float(kappas.max() / kappas.min())
        note = f"inferred from the log, flops / (3 N D) spans a factor {spread:.3g}"
    else:
        kappa, note = float(args.kappa), "given"
    result = {"n_rows": len(prepared), "n_runs": int(n_runs), "frontier": _as_json(pf),
              "frontier_points": int(len(idx)), "compute": args.compute, "compute_unit": unit,
              "sum_law": _as_json(sf), "kappa": kappa}
    opt = None
    flops_unit = (args.compute_unit or 1e15) if args.compute == "flops" else 1e15
    if sf.alpha > 0 and sf.beta > 0:
        opt = compute_optimal(sf, kappa, compute_unit=flops_unit)
        out_lines += _table(
            f"Compute-optimal allocation (eq. 6-7), kappa = {kappa:.4g} ({note}); "
            f"N* = G (C/3 kappa)^a, D* = (C/3 kappa)^b / G, L = L_inf + F_c C^-gamma_c, "
            f"C in {'PFLOPs' if flops_unit == 1e15 else f'FLOPs/{flops_unit:g}'}", opt,
            [("a", "a"), ("b", "b"), ("G", "G"), ("F_c", "F_c"), ("gamma_c", "gamma_c")],
            sf.confidence)
        out_lines.append("")
        result["compute_optimal"] = _as_json(opt)
    else:
        out_lines += ["Compute-optimal allocation: skipped (alpha or beta is 0)", ""]

    if args.compute == "flops" and opt is not None:
        cons = consistency(pf, sf, kappa, compute_unit=flops_unit)

        def ci(d, k):
            return f"[{_fmt(d[k][0])}, {_fmt(d[k][1])}]" if k in d else ""

        overlap = cons.gamma_c_intervals_overlap
        out_lines += [
            "Consistency (table 1): frontier fit (eq. 4) vs derived from the sum law (eq. 7)",
            f"  {'param':<10} {'frontier eq.4':>14} {'':<22} {'sum law eq.7':>14}",
            f"  {'F_c':<10} {_fmt(cons.F_c_frontier):>14} {ci(cons.ci_frontier, 'F_c'):<22} "
            f"{_fmt(cons.F_c_sum):>14} {ci(cons.ci_sum, 'F_c')}",
            f"  {'gamma_c':<10} {_fmt(cons.gamma_c_frontier):>14} {ci(cons.ci_frontier, 'gamma_c'):<22} "
            f"{_fmt(cons.gamma_c_sum):>14} {ci(cons.ci_sum, 'gamma_c')}",
            f"  gamma_c difference (eq.7 - eq.4): {cons.gamma_c_difference:+.4f}; "
            f"F_c ratio: {cons.F_c_ratio:.4f}; intervals overlap: "
            f"{'n/a' if overlap is None else ('yes' if overlap else 'NO')}",
            "",
        ]
        result["consistency"] = {
            "gamma_c_frontier": cons.gamma_c_frontier, "gamma_c_sum": cons.gamma_c_sum,
            "F_c_frontier": cons.F_c_frontier, "F_c_sum": cons.F_c_sum,
            "ci_frontier": {k: list(v) for k, v in cons.ci_frontier.items()},
            "ci_sum": {k: list(v) for k, v in cons.ci_sum.items()},
            "gamma_c_difference": cons.gamma_c_difference, "F_c_ratio": cons.F_c_ratio,
            "gamma_c_intervals_overlap": overlap,
        }
    elif args.compute == "hours":
        out_lines += ["Consistency check: skipped (it compares FLOPs laws; run with --compute flops)",
                      ""]
    result["_plot"] = (x, prepared, idx, pf, sf, opt if args.compute == "flops" else None, unit_name)
    return result


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from nnip_scaling.scaling import FitWarning, load_runs

    try:
        runs = load_runs(args.runs)
        for k, v in args.where:
            runs = runs.where(**{k: v})
        if "arch" in runs.extra and len(np.unique(runs.extra["arch"].astype(str))) > 1:
            arch = runs.extra["arch"].astype(str)
            groups = [(a, runs.select(arch == a)) for a in dict.fromkeys(arch)]
        else:
            label = str(runs.extra["arch"][0]) if "arch" in runs.extra else "all runs"
            groups = [(label, runs)]
        results = {}
        lines: list[str] = []
        for label, sub in groups:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", FitWarning)
                results[label] = _fit_group(sub, args, label, lines)
            for w in caught:
                if issubclass(w.category, FitWarning):
                    lines.append(f"  warning: {w.message}")
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            if caught:
                lines.append("")
    except (OSError, ValueError, KeyError) as exc:
        print(f"nnip-scaling fit: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines).rstrip())

    plots = {label: r.pop("_plot") for label, r in results.items()}
    if args.json:
        payload = {"runs": str(args.runs), "settings": {
            k: v for k, v in vars(args).items() if k not in ("runs", "_run", "command")},
            "results": results}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, default=_json_default)
        print(f"wrote {args.json}")
    if args.plot:
        from pathlib import Path

        try:
            from nnip_scaling.scaling.plot import plot_report

            base = Path(args.plot)
            for label, (x, prepared, idx, pf, sf, opt, unit_name) in plots.items():
                path = base if len(plots) == 1 else base.with_name(
                    f"{base.stem}_{_safe(label)}{base.suffix}")
                plot_report(path, compute=x, loss=prepared.loss, frontier=idx, frontier_fit=pf,
                            N=prepared.N, D=prepared.D, sum_loss=prepared.loss, sum_fit=sf,
                            optimum=opt, compute_label=unit_name, title=label)
                print(f"wrote {path}")
        except (ImportError, OSError, ValueError) as exc:
            print(f"nnip-scaling fit: error: cannot write the plot: {exc}", file=sys.stderr)
            return 2
    return 0


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
