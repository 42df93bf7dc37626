r"""Sanity gates of a scaling analysis: is the result a measurement, or an artefact of the design?

A sum-law fit :math:`L = L_\infty + A N^{-\alpha} + B D^{-\beta}` (eq. 5) can only identify
:math:`\alpha` if, at equal data, larger models reach lower loss; and an exponent that sits on the
fit's bound, or whose interval covers most of the allowed range, is not a measurement at all. Three
gates check this, each returning a :class:`Gate`:

* :func:`wider_wins` — over every (data size, adjacent model sizes) pair, the fraction in which the
  larger model has the lower validation loss (pass: at least ``min_fraction``, default 0.8);
* :func:`exponent_gates` — per exponent: the value at or near a bound (``margin`` of the range), the
  interval not excluding the lower bound (0: no scaling), or the interval spanning more than
  ``max_span`` of the range.

Each failed gate says what it saw, the likely cause and what to change. Pure numpy, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Gate", "WiderWins", "wider_wins", "exponent_gates", "DEFAULT_MIN_WIDER_WINS"]

#: Share of (data size, adjacent widths) pairs the wider model must win for α to be identifiable.
DEFAULT_MIN_WIDER_WINS = 0.8
_LOWER_MARGIN = 0.002  # of the allowed range: 0.01 for exponents in [0, 5]
_UPPER_MARGIN = 0.02   # 0.1 below an upper bound of 5: an exponent of 4.9 is a fit that ran away
_MAX_SPAN = 0.5


@dataclass(frozen=True)
class Gate:
    """One sanity check.

    Attributes:
        name: what was checked (``"wider_wins"``, ``"alpha_bound"``, ``"beta_interval"``, ...).
        passed: whether the result may be read as a measurement.
        message: what was seen (one sentence, with the number).
        advice: likely cause and what to change (empty when ``passed``).
        symbols: the fitted quantities this gate invalidates when it fails (e.g. ``("alpha",)``).
        value: the number checked (fraction, exponent, interval width), NaN when not applicable.
    """

    name: str
    passed: bool
    message: str
    advice: str = ""
    symbols: tuple[str, ...] = ()
    value: float = math.nan

    def __str__(self) -> str:
        head = "ok" if self.passed else "FAILED"
        return f"[{head}] {self.message}" + (f" Likely cause and fix: {self.advice}" if self.advice else "")


@dataclass(frozen=True)
class WiderWins(Gate):
    """:func:`wider_wins`'s gate, with the pair counts.

    Attributes:
        wins: pairs where the larger model had the lower loss.
        pairs: pairs compared.
        per_pair: ``(N_small, N_large) -> (wins, pairs)`` for each adjacent pair of model sizes.
    """

    wins: int = 0
    pairs: int = 0
    per_pair: Mapping[tuple[float, float], tuple[int, int]] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """``wins / pairs`` (NaN without pairs)."""
        return self.wins / self.pairs if self.pairs else math.nan


def _curve(N: np.ndarray, D: np.ndarray, loss: np.ndarray, n: float) -> tuple[np.ndarray, np.ndarray]:
    """All (D, loss) points of model size ``n``, sorted by D, one loss per D (the mean of duplicates)."""
    m = N == n
    d, inverse = np.unique(D[m], return_inverse=True)
    y = np.bincount(inverse, weights=loss[m]) / np.bincount(inverse)
    return d, y


def wider_wins(N: Sequence[float], D: Sequence[float], loss: Sequence[float], *,
               min_fraction: float = DEFAULT_MIN_WIDER_WINS) -> WiderWins:
    r"""Fraction of (data size, adjacent model sizes) pairs in which the larger model has the lower loss.

    For each pair of adjacent model sizes :math:`N_i < N_{i+1}` and each data size :math:`D` logged
    for :math:`N_i` inside the range logged for :math:`N_{i+1}`, the larger model's loss at :math:`D`
    is read off its curve (exactly where it logged that :math:`D`, else linear in
    :math:`\log D, \log L` between its neighbours) and compared. Runs of the same size are merged.

    Args:
        N, D, loss: ``[n]`` the evaluated points (model size, tokens seen, validation loss).
        min_fraction: the gate passes at or above this share.

    Returns:
        :class:`WiderWins` (``passed`` is False with fewer than two model sizes or no overlap in D).

    Raises:
        ValueError: arrays of different lengths, or ``min_fraction`` outside (0, 1].
    """
    N, D, y = (np.asarray(a, dtype=np.float64) for a in (N, D, loss))
    if not (N.shape == D.shape == y.shape) or N.ndim != 1:
        raise ValueError(f"N, D and loss must be 1-d arrays of one length, got {N.shape}, {D.shape}, {y.shape}")
    if not (0.0 < min_fraction <= 1.0):
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction!r}")
    sizes = np.unique(N)
    if len(sizes) < 2:
        return WiderWins(name="wider_wins", passed=False, symbols=("alpha",),
                         message=f"only {len(sizes)} model size(s): the ordering by size cannot be checked.",
                         advice="train at least two (better three or four) widths.")
    wins = pairs = 0
    per_pair: dict[tuple[float, float], tuple[int, int]] = {}
    for small, large in zip(sizes[:-1], sizes[1:]):
        d_s, y_s = _curve(N, D, y, small)
        d_l, y_l = _curve(N, D, y, large)
        inside = (d_s >= d_l.min()) & (d_s <= d_l.max())
        if not inside.any():
            per_pair[(float(small), float(large))] = (0, 0)
            continue
        y_large = np.exp(np.interp(np.log(d_s[inside]), np.log(d_l), np.log(y_l)))
        w, p = int(np.sum(y_large < y_s[inside])), int(inside.sum())
        per_pair[(float(small), float(large))] = (w, p)
        wins, pairs = wins + w, pairs + p
    if pairs == 0:
        return WiderWins(name="wider_wins", passed=False, symbols=("alpha",), per_pair=per_pair,
                         message="no data size was logged for two adjacent model sizes.",
                         advice="evaluate every width at the same token counts (same batch size and eval "
                                "schedule).")
    frac = wins / pairs
    ok = frac >= min_fraction
    msg = f"the wider model wins {wins}/{pairs} = {100 * frac:.0f}% of (data size, adjacent widths) pairs"
    msg += f" (gate: >= {100 * min_fraction:.0f}%)."
    advice = "" if ok else (
        "wider models do not beat narrower ones at equal data, so alpha cannot be identified: train longer "
        "(more minutes, or the family's tokens), check the wide models' learning rate (lr, base_width), or space "
        "the widths further apart.")
    return WiderWins(name="wider_wins", passed=ok, message=msg, advice=advice, symbols=() if ok else ("alpha",),
                     value=frac, wins=wins, pairs=pairs, per_pair=per_pair)


_ADVICE = {
    "alpha": "alpha needs sizes that matter: a wider range of widths, longer runs, a learning rate that suits "
             "the widest model.",
    "beta": "beta needs data sizes over a decade or more: more tokens (several epochs if needed), less dropped "
            "at the start.",
    "gamma": "the frontier needs several models, each on it for part of the compute range: more widths, longer "
             "runs.",
}


def exponent_gates(values: Mapping[str, float], intervals: Mapping[str, tuple[float, float]], *,
                   bounds: tuple[float, float] = (0.0, 5.0), lower_margin: float = _LOWER_MARGIN,
                   upper_margin: float = _UPPER_MARGIN, max_span: float = _MAX_SPAN) -> list[Gate]:
    """Bound and interval gates of fitted exponents.

    For each exponent ``s`` in ``values``: ``{s}_bound`` fails when the value lies within
    ``lower_margin * (hi - lo)`` of the lower bound or ``upper_margin * (hi - lo)`` of the upper one;
    ``{s}_interval`` fails when the interval reaches into either margin (at the lower bound: it does not
    exclude "no scaling"), or spans more than ``max_span`` of the range.

    Args:
        values: symbol -> fitted value (e.g. ``{"alpha": 0.4, "beta": 0.3}``).
        intervals: symbol -> ``(low, high)`` (symbols missing here get no interval gate).
        bounds: the fit's ``exponent_bounds``.
        lower_margin, upper_margin, max_span: fractions of ``bounds``' range.

    Returns:
        one or two :class:`Gate` per symbol, in ``values`` order.
    """
    lo, hi = (float(b) for b in bounds)
    width = hi - lo
    eps_lo, eps_hi = lower_margin * width, upper_margin * width
    gates: list[Gate] = []
    for s, v in values.items():
        advice = _ADVICE.get(s.split("_")[0], _ADVICE["gamma"])
        if not math.isfinite(v):
            gates.append(Gate(name=f"{s}_bound", passed=False, symbols=(s,), value=v,
                              message=f"{s} is not finite.", advice=advice))
            continue
        near = "lower" if v <= lo + eps_lo else "upper" if v >= hi - eps_hi else ""
        gates.append(Gate(
            name=f"{s}_bound", passed=not near, symbols=(s,) if near else (), value=v,
            message=(f"{s} = {v:.3g} is at its {near} bound {lo if near == 'lower' else hi:g}."
                     if near else f"{s} = {v:.3g} is clear of the bounds [{lo:g}, {hi:g}]."),
            advice=advice if near else ""))
        if s not in intervals:
            continue
        a, b = (float(x) for x in intervals[s])
        span = (b - a) / width if math.isfinite(a) and math.isfinite(b) else math.inf
        problems = []
        if not math.isfinite(a) or a <= lo + eps_lo:
            problems.append(f"does not exclude {lo:g}")
        if not math.isfinite(b) or b >= hi - eps_hi:
            problems.append(f"reaches the upper bound {hi:g}")
        if span > max_span:
            problems.append(f"spans {100 * min(span, 1.0):.0f}% of the allowed range")
        gates.append(Gate(
            name=f"{s}_interval", passed=not problems, symbols=(s,) if problems else (), value=span,
            message=(f"the interval of {s} [{a:.3g}, {b:.3g}] " + " and ".join(problems) + "."
                     if problems else f"the interval of {s} [{a:.3g}, {b:.3g}] is informative."),
            advice=advice if problems else ""))
    return gates
