"""The study's report: the exponent table (console and ``report.md``), the gates, and ``report.json``.

``report.md`` starts with the exponent table, one row per family, in this fixed form (parsed by
:func:`parse_exponent_table`)::

    | family | runs | N | D_max | kappa | wider wins | gamma_c (eq. 4) | gamma_c (eq. 7) | alpha | beta | gamma_h | a | b |
    | spherical | 3 | 2.2k-9.7k | 1.2e+05 | 17.5 | 92% (23/25) | 0.31 [0.22, 0.40] | ... |

Each cell with an interval is ``value [low, high]`` (95% bootstrap percentile interval), or ``n/a``. A
number that failed a sanity gate (:mod:`nnip_scaling.scaling.gates`) carries a ``(!k)`` mark pointing to
the footnote ``k`` under the table, which says what failed, the likely cause and what to change.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from nnip_scaling.study.analyse import BOOTSTRAP

__all__ = ["write_report", "exponent_table", "gate_lines", "parse_exponent_table", "EXPONENT_COLUMNS",
           "PAPER_GAMMA_C", "machine_description"]

EXPONENT_COLUMNS = ("family", "runs", "N", "D_max", "kappa", "wider wins", "gamma_c (eq. 4)", "gamma_c (eq. 7)",
                    "alpha", "beta", "gamma_h", "a", "b")

#: The paper's compute exponents (table 1, frontier fit) per family, for comparison in the report.
PAPER_GAMMA_C: Mapping[str, float] = MappingProxyType(
    {"unconstrained": 0.142, "cartesian": 0.173, "directional": 0.255, "spherical": 0.403})
PAPER_ALPHA: Mapping[str, float] = MappingProxyType(
    {"unconstrained": 0.276, "cartesian": 0.387, "directional": 0.524, "spherical": 0.817})
PAPER_BETA: Mapping[str, float] = MappingProxyType(
    {"unconstrained": 0.311, "cartesian": 0.394, "directional": 0.499, "spherical": 0.753})
_LABEL = {"unconstrained": "MPNN without symmetry constraint", "directional": "GemNet-OC-like, invariant angles",
          "cartesian": "MC-EGNN-like, Cartesian vectors", "spherical": "eSEN-like, spherical tensors"}


def machine_description() -> str:
    """One line: CPU model, cores, load, torch version."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average {:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())
    return f"{model}, {os.cpu_count()} CPU(s){load}, torch {torch.__version__}"


def _num(v: float | None) -> str:
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


class _Footnotes:
    """Numbers the failed gates (the same gate gets the same mark everywhere) and writes them under the
    table, grouped by family, each family's likely causes and fixes once."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []

    def mark(self, family: str, gates: Sequence[Any]) -> str:
        marks = []
        for g in gates:
            key = (family, g)
            if key not in self.items:
                self.items.append(key)
            marks.append(str(self.items.index(key) + 1))
        return f" (!{','.join(marks)})" if marks else ""

    def lines(self) -> list[str]:
        """``- family: (!k) what failed; ...`` per family, then each distinct fix once, with its families."""
        out: list[str] = []
        for fam in dict.fromkeys(fam for fam, _ in self.items):
            marks = [(i, g) for i, (f, g) in enumerate(self.items, 1) if f == fam]
            out.append(f"- {fam}: " + "; ".join(f"(!{i}) {g.message.rstrip('.')}" for i, g in marks) + ".")
        fixes: dict[str, list[str]] = {}
        for fam, g in self.items:
            if g.advice and fam not in fixes.setdefault(g.advice, []):
                fixes[g.advice].append(fam)
        if fixes:
            out += ["", "Likely causes and what to change:", ""]
            out += [f"- {', '.join(fams)}: {advice}" for advice, fams in fixes.items()]
        return out


def _cells(fit: Any, runs: Any, notes: _Footnotes) -> dict[str, str]:
    kinds = runs.extra["kind"].astype(str)
    m = kinds == fit.label
    fr, fh, sl, co, op = fit.frontier, fit.frontier_hours, fit.sum_law, fit.consistency, fit.optimum

    def flag(symbol: str, text: str) -> str:
        return text + notes.mark(fit.label, fit.failures(symbol)) if text != "n/a" else text

    ww = fit.wider_wins
    ww_text = "n/a" if ww is None or not ww.pairs else f"{100 * ww.fraction:.0f}% ({ww.wins}/{ww.pairs})"
    if ww is not None and not ww.passed:
        ww_text += notes.mark(fit.label, [ww])
    gamma_sum = (co.gamma_c_sum, co.ci_sum.get("gamma_c")) if co is not None else \
        ((op.gamma_c, op.ci.get("gamma_c")) if op is not None else (None, None))
    return {
        "family": fit.label,
        "runs": str(fit.n_runs),
        "N": f"{_si(runs.N[m].min())}-{_si(runs.N[m].max())}" if m.any() else "n/a",
        "D_max": f"{runs.D[m].max():.3g}" if m.any() else "n/a",
        "kappa": _num(fit.kappa),
        "wider wins": ww_text,
        "gamma_c (eq. 4)": flag("gamma_c", _ci(fr.gamma, fr.ci.get("gamma")) if fr is not None else "n/a"),
        "gamma_c (eq. 7)": flag("gamma_c_sum", _ci(*gamma_sum)),
        "alpha": flag("alpha", _ci(sl.alpha, sl.ci.get("alpha")) if sl is not None else "n/a"),
        "beta": flag("beta", _ci(sl.beta, sl.ci.get("beta")) if sl is not None else "n/a"),
        "gamma_h": flag("gamma_h", _ci(fh.gamma, fh.ci.get("gamma")) if fh is not None else "n/a"),
        "a": flag("a", _ci(op.a, op.ci.get("a")) if op is not None else "n/a"),
        "b": flag("b", _ci(op.b, op.ci.get("b")) if op is not None else "n/a"),
    }


def exponent_table(fits: Sequence[Any], runs: Any) -> list[str]:
    """The markdown exponent table (header, rule, one row per family) and, under it, one footnote per
    failed gate (what failed, likely cause, what to change)."""
    notes = _Footnotes()
    lines = ["| " + " | ".join(EXPONENT_COLUMNS) + " |", "|" + "---|" * len(EXPONENT_COLUMNS)]
    for fit in fits:
        c = _cells(fit, runs, notes)
        lines.append("| " + " | ".join(c[k] for k in EXPONENT_COLUMNS) + " |")
    foot = notes.lines()
    if foot:
        lines += ["", "FAILED sanity gates: numbers marked (!k) are not measurements.", ""] + foot
    return lines


def gate_lines(fits: Sequence[Any]) -> list[str]:
    """One line per family: the wider-wins fraction and the gates that failed (or "all gates passed")."""
    out = []
    for f in fits:
        ww = f.wider_wins
        frac = "n/a" if ww is None or not ww.pairs else f"{100 * ww.fraction:.0f}% ({ww.wins}/{ww.pairs})"
        failed = [g.name for g in f.failed_gates]
        out.append(f"- {f.label}: wider model wins {frac} of (data size, adjacent widths) pairs; "
                   + (f"FAILED: {', '.join(failed)}" if failed else "all gates passed"))
    return out


def parse_exponent_table(text: str) -> dict[str, dict[str, Any]]:
    """Read the exponent table back from ``report.md`` text.

    Returns:
        family -> column -> value: ``None`` for ``n/a``; ``(value, low, high)`` for cells with an interval;
        a float for plain numbers (``wider wins``: the fraction); the text otherwise. ``row["failed"]`` lists
        the columns whose number carries a failed-gate mark.

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
    num = r"-?[\d.eE+-]+|-?inf|nan"
    cell_ci = re.compile(rf"^({num}) \[({num}), ({num})\]$")
    frac = re.compile(r"^(\d+)% \((\d+)/(\d+)\)$")
    mark = re.compile(r" \(!\d+(,\d+)*\)$")
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(EXPONENT_COLUMNS):
            raise ValueError(f"malformed exponent-table row: {line!r}")
        row: dict[str, Any] = {"failed": []}
        for k, c in zip(EXPONENT_COLUMNS, cells):
            if mark.search(c):
                row["failed"].append(k)
                c = mark.sub("", c)
            m, f = cell_ci.match(c), frac.match(c)
            if c == "n/a":
                row[k] = None
            elif m:
                row[k] = tuple(float(x) for x in m.groups())
            elif f:
                row[k] = int(f.group(2)) / int(f.group(3))
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
    s = sum(1 if pos[items[i]] < pos[items[j]] else -1 for i in range(n) for j in range(i + 1, n))
    return s / (n * (n - 1) / 2)


def _ranking_lines(fits: Mapping[str, Any], ranking: Sequence[str]) -> list[str]:
    if not ranking:
        return ["No family has a frontier fit (see the notes)."]
    lines = []
    paper_order = [k for k in sorted(PAPER_GAMMA_C, key=lambda k: -PAPER_GAMMA_C[k]) if k in ranking]
    for i, k in enumerate(ranking, 1):
        f = fits[k]
        caveat = " (FAILED gates: " + ", ".join(g.name for g in f.failed_gates) + ")" if f.failed_gates else ""
        lines.append(f"{i}. {k} ({_LABEL.get(k, k)}): γ_c = {f.gamma_c:.3f} (eq. 4), {_num(f.gamma_c_derived)} "
                     f"(eq. 7); paper: {PAPER_GAMMA_C.get(k, math.nan):.3f}{caveat}")
    tau = _kendall(ranking, paper_order)
    lines += ["", f"Paper's order by γ_c (table 1): {' > '.join(paper_order)}. Kendall τ between this study's "
              f"ranking and the paper's: {_num(tau)} (1 = same order)."]
    derived = [f for f in fits.values() if math.isfinite(f.gamma_c_derived)]
    if len(derived) >= 2:
        order2 = [f.label for f in sorted(derived, key=lambda f: -f.gamma_c_derived)]
        lines.append(f"Ranking by the derived γ_c (eq. 7): {' > '.join(order2)}.")
    untrusted = [k for k in ranking if fits[k].failed_gates]
    if untrusted:
        lines.append(f"The ranking is not a measurement for {', '.join(untrusted)}: their numbers failed a gate.")
    return lines


def _runs_lines(summaries: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["| run | N | D | steps | epochs | first loss | final loss | hours | stop |", "|---|---|---|---|---|---|---|---|---|"]
    for r in summaries:
        lines.append(f"| {r['run_id']} | {r['n_params']:,} | {r['tokens']:,} | {r['steps']} | {r['epoch']:.2g} | "
                     f"{r['first_loss']:.4f} | {r['final_loss']:.4f} | {r['hours']:.4f} | {r['stop_reason']} |")
    return lines


def _kept_note(summaries: Sequence[Mapping[str, Any]]) -> str:
    """How many runs an earlier invocation trained (resumed or re-analysed study), or ``""``."""
    kept = sum(bool(s.get("kept")) for s in summaries)
    if not kept:
        return ""
    return (f" ({kept} of {len(summaries)} runs finished in an earlier invocation and were kept: their training "
            "time is not in this figure)")


def write_report(out: Path, *, config: Any, data_name: str, n_train: int, n_train_atoms: int, n_val: int,
                 runs: Any, summaries: Sequence[Mapping[str, Any]], fits: Mapping[str, Any],
                 ranking: Sequence[str], figures: Sequence[Path], plan: Mapping[str, Any], seconds: float,
                 workers: int, kappa_notes: Mapping[str, Sequence[str]]) -> Path:
    """Write ``report.md`` and ``report.json`` into ``out``; returns the path of ``report.md``."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_description()
    fit_list = list(fits.values())
    lines = [
        "# Scaling study", "",
        f"{now}; {data_name}: {n_train:,} training configurations ({n_train_atoms:,} atoms), {n_val} validation "
        f"configurations; budget {config.minutes:g} min, took {seconds / 60:.1f} min with {workers} worker(s)"
        f"{_kept_note(summaries)}; {machine}.", "",
        "## Exponents", "",
        "Compute exponent γ_c fitted on the loss–FLOPs Pareto frontier (eq. 4, L_∞ = 0, compute in PFLOPs) and "
        "derived from the sum law (eq. 7: αβ/(α+β)); α, β of the sum law L = A N^-α + B D^-β (eq. 5); γ_h on "
        "the loss–hours frontier; a, b of the compute-optimal allocation N* ∝ C^a, D* ∝ C^b (section 4.3). "
        f"Brackets: 95% bootstrap intervals ({config.n_bootstrap} resamples). Sum law (α, β, eq. 7, a, b): "
        f"bootstrap: {BOOTSTRAP} (every run kept, each run's curve of log residuals replaced by that of a run "
        "drawn with replacement); frontiers (γ_c eq. 4, γ_h): whole runs resampled. The first "
        f"{100 * config.drop_first:g}% of each run is dropped before fitting. \"wider wins\": share of (data size, "
        "adjacent widths) pairs in which the wider model has the lower validation loss.", "",
    ]
    lines += exponent_table(fit_list, runs)
    lines += ["", "## Sanity gates", ""] + gate_lines(fit_list)
    lines += ["", "## Ranking", ""] + _ranking_lines(fits, ranking)
    lines += ["", "## Runs", ""] + _runs_lines(summaries)
    lines += ["", "Paper values for reference (table 7): "
              + "; ".join(f"{k}: α {PAPER_ALPHA[k]}, β {PAPER_BETA[k]}" for k in PAPER_GAMMA_C) + "."]
    notes = [f"- {f.label}: {w}" for f in fit_list for w in f.warnings]
    notes += [f"- {f.label}: consistency (table 1): {f.consistency_note}" for f in fit_list if f.consistency_note]
    notes += [f"- {k} (κ): {n}" for k, ns in kappa_notes.items() for n in ns]
    notes += [f"- {r['run_id']} stopped on {r['stop_reason']!r} before its token budget"
              for r in summaries if r["stop_reason"] != "tokens"]
    missing = [s.kind for s in config.families if s.kind not in fits]
    notes += [f"- {k}: no logged points, no fit" for k in missing]
    lines += ["", "## Notes", ""] + (notes or ["- none"])
    lines += ["", "Short CPU runs give noisy exponents; compare them with their intervals, not as point values.",
              "Files: `runs.csv` (all learning curves, readable by `nnip_scaling.scaling.load_runs` and "
              "`nnip-scaling fit`), `runs/<run>/` (per-run log, checkpoint, summary), `config.toml`, `plan.json`, "
              "`report.json`."]
    if figures:
        lines += ["", "## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    payload = _as_json(fits, ranking, plan, seconds, summaries)
    payload.update(machine=machine, workers=workers, data=data_name, finished=now)
    (out / "report.json").write_text(json.dumps(payload, indent=1, default=_json_default))
    return path


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _fit_json(obj: Any, symbols: Sequence[str]) -> dict[str, Any] | None:
    if obj is None:
        return None
    d: dict[str, Any] = {k: float(getattr(obj, k)) for k in symbols}
    d["ci"] = {k: [float(x) for x in v] for k, v in getattr(obj, "ci", {}).items()}
    return d


def _gate_json(g: Any) -> dict[str, Any]:
    d = {"name": g.name, "passed": g.passed, "message": g.message, "advice": g.advice, "value": g.value,
         "invalidates": list(g.symbols)}
    if hasattr(g, "wins"):
        d.update(wins=g.wins, pairs=g.pairs,
                 per_pair=[{"N_small": a, "N_large": b, "wins": w, "pairs": p} for (a, b), (w, p) in g.per_pair.items()])
    return d


def _as_json(fits: Mapping[str, Any], ranking: Sequence[str], plan: Mapping[str, Any], seconds: float,
             summaries: Sequence[Mapping[str, Any]]) -> dict:
    fam = {}
    for k, f in fits.items():
        co = f.consistency
        ww = f.wider_wins
        fam[k] = {
            "kappa": f.kappa, "n_runs": f.n_runs,
            "wider_wins": None if ww is None else ww.fraction,
            "gates_passed": not f.failed_gates,
            "gates": [_gate_json(g) for g in f.gates],
            "frontier": _fit_json(f.frontier, ("F", "gamma", "L_inf")),
            "frontier_hours": _fit_json(f.frontier_hours, ("F", "gamma", "L_inf")),
            "sum_law": _fit_json(f.sum_law, ("L_inf", "A", "B", "alpha", "beta")),
            "compute_optimal": _fit_json(f.optimum, ("a", "b", "G", "F_c", "gamma_c")),
            "consistency": None if co is None else {
                "gamma_c_frontier": co.gamma_c_frontier, "gamma_c_sum": co.gamma_c_sum,
                "F_c_frontier": co.F_c_frontier, "F_c_sum": co.F_c_sum, "note": f.consistency_note,
                "gamma_c_intervals_overlap": co.gamma_c_intervals_overlap},
            "warnings": list(f.warnings),
        }
    return {"families": fam, "ranking": list(ranking), "bootstrap": {"sum_law": BOOTSTRAP, "frontiers": "whole runs resampled"}, "gates_passed": all(not f.failed_gates for f in fits.values()),
            "plan": dict(plan), "runs": [dict(s) for s in summaries], "seconds": seconds}
