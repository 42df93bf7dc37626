"""Plain-text summaries of result objects: what ``print(fit)`` shows (private).

Modelled on statsmodels' ``summary()``: a title with the law, a few facts (points, objective,
bootstrap), a table of the parameters with their intervals, and the warnings the fit emitted::

    ==========================================================================
    Sum power law   L(N, D) = L_inf + A N^-alpha + B D^-beta   (paper eq. 5)
    ==========================================================================
    points: 60    objective: 1.9588e-04    bootstrap: 1000 draws, 95% percentile intervals
    --------------------------------------------------------------------------
    parameter          value             95% interval
    --------------------------------------------------------------------------
    L_inf                  0              [0, 0]
    ...
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["format_value", "summary_table", "short_repr"]

_WIDTH = 78


def format_value(v: float) -> str:
    """Five significant digits; exact zero as ``0``; non-finite as ``nan`` / ``inf``."""
    if v == 0:
        return "0"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.5g}"


def _interval(ci: Mapping[str, tuple[float, float]], name: str, fixed: Sequence[str]) -> str:
    if name in fixed:
        return "(fixed)"
    if name not in ci:
        return "-"
    lo, hi = ci[name]
    return f"[{format_value(lo)}, {format_value(hi)}]"


def summary_table(
    title: str,
    facts: Iterable[str],
    values: Mapping[str, float],
    ci: Mapping[str, tuple[float, float]],
    *,
    confidence: float | None,
    fixed: Sequence[str] = (),
    warnings: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> str:
    """The summary block: title, facts, parameter table with intervals, notes and warnings."""
    heavy, light = "=" * _WIDTH, "-" * _WIDTH
    level = f"{100 * confidence:g}% interval" if confidence is not None and ci else "interval"
    lines = [heavy, title, heavy, *_wrap(list(facts)), light,
             f"{'parameter':<12}{'value':>14}    {level}", light]
    for name, value in values.items():
        lines.append(f"{name:<12}{format_value(value):>14}    {_interval(ci, name, fixed)}")
    lines.append(heavy)
    lines.extend(notes)
    if warnings:
        lines.append("Warnings:")
        lines.extend(f"[{i}] {w}" for i, w in enumerate(warnings, start=1))
    return "\n".join(lines)


def _wrap(facts: list[str]) -> list[str]:
    """Facts joined by four spaces, broken into lines of at most the table width."""
    lines: list[str] = []
    for fact in facts:
        if lines and len(lines[-1]) + 4 + len(fact) <= _WIDTH:
            lines[-1] += "    " + fact
        else:
            lines.append(fact)
    return lines


def short_repr(cls_name: str, values: Mapping[str, float], **extra: object) -> str:
    """``Name(a=1.2345, b=0.5, n_points=60, ...)``: values at five digits, extras as given."""
    parts = [f"{k}={format_value(v)}" for k, v in values.items()]
    parts += [f"{k}={v}" for k, v in extra.items()]
    return f"{cls_name}({', '.join(parts)})"
