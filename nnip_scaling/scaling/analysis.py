r"""One scaling analysis of a run log, shared by ``nnip-scaling study`` and ``nnip-scaling fit``.

:func:`analyse_runs` splits the log into families (its ``kind`` column, else ``arch``, else one group)
and runs, per family, the paper's chain (sections 3.2, 4.1-4.3):

1. preprocessing: EMA smoothing and warm-up removal per run (:func:`~nnip_scaling.scaling.prepare_runs`);
2. the loss-compute Pareto frontier and its power law :math:`L = L_\infty + F_c C^{-\gamma_c}` (eq. 4),
   on FLOPs (in ``compute_unit``) and, when the log has hours, on wall-clock hours (:math:`\gamma_h`);
3. the sum law :math:`L = L_\infty + A N^{-\alpha} + B D^{-\beta}` (eq. 5) on every point;
4. the compute-optimal allocation :math:`N^* \propto C^a,\ D^* \propto C^b` and the derived
   :math:`\gamma_c = \alpha\beta/(\alpha+\beta)` (eq. 6-7);
5. the consistency check of table 1, like with like: eq. 7 carries the sum law's :math:`L_\infty`, so
   when the frontier was fitted with another :math:`L_\infty` it is refitted with the sum law's for the
   comparison (and :attr:`RunAnalysis.consistency_note` says so);
6. the sanity gates (:mod:`nnip_scaling.scaling.gates`): the wider model winning at equal data, and
   every exponent clear of its bounds with an informative interval.

Every fit's :class:`FitWarning` and every failed gate is kept on the result (``warnings``, ``gates``),
so that no caller prints a number without its caveats. Pure numpy/scipy.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnip_scaling.scaling.allocation import ComputeOptimal, Consistency, compute_optimal, consistency
from nnip_scaling.scaling.fit import FitWarning, PowerLawFit, SumPowerLawFit, fit_power_law, fit_sum_power_law
from nnip_scaling.scaling.frontier import pareto_frontier, prepare_runs
from nnip_scaling.scaling.gates import DEFAULT_MIN_WIDER_WINS, Gate, WiderWins, exponent_gates, wider_wins
from nnip_scaling.scaling.runs import RunLog

__all__ = ["AnalysisSettings", "RunAnalysis", "analyse_runs", "split_families"]

#: Quantities each fitted symbol feeds: a failed gate on the key invalidates them all.
_DERIVED = {
    "alpha": ("alpha", "gamma_c_sum", "a", "b"),
    "beta": ("beta", "gamma_c_sum", "a", "b"),
    "gamma_c": ("gamma_c",),
    "gamma_h": ("gamma_h",),
}


@dataclass(frozen=True, kw_only=True)
class AnalysisSettings:
    """How :func:`analyse_runs` fits (defaults: the paper's choices where it states them).

    Attributes:
        compute_unit: FLOPs per unit of the frontier's compute axis (1e15: PFLOPs, table 1).
        hours_unit: hours per unit of the time axis.
        drop_first: share of each run dropped before fitting (paper: 0.01-0.1).
        ema: EMA factor smoothing each learning curve (paper: 0.9 for GemNet-OC), or ``None``.
        frontier_L_inf: ``L_inf`` of eq. 4 (a value, or ``"fit"``); the paper uses 0.
        sum_L_inf: ``L_inf`` of eq. 5 (a value, or ``"fit"``); the paper finds ~0.
        huber_delta: Huber threshold of the sum-law fit on log residuals.
        n_bootstrap: bootstrap resamples of every fit (0: no intervals, and no interval gates).
        resample: bootstrap scheme: ``"runs"`` (whole learning curves drawn with replacement),
            ``"rows"`` (single points), or ``"residual"``: the sum law with the design fixed (every
            run kept, per-run residual curves resampled; for designed studies with few widths, where
            ``"runs"`` leaves resamples with one or two model sizes) and the frontiers by whole runs
            (a Pareto frontier's points are selected by their losses, so its design is not fixed).
            See :mod:`nnip_scaling.scaling.fit`.
        seed: bootstrap seed.
        n_starts: local refinements of the sum-law fit.
        exponent_bounds: allowed range of every exponent.
        min_wider_wins: the wider-wins gate's threshold.
    """

    compute_unit: float = 1e15
    hours_unit: float = 1.0
    drop_first: float = 0.0
    ema: float | None = None
    frontier_L_inf: float | str = 0.0
    sum_L_inf: float | str = 0.0
    huber_delta: float | None = 1e-3
    n_bootstrap: int = 1000
    resample: str = "runs"
    seed: int = 0
    n_starts: int = 8
    exponent_bounds: tuple[float, float] = (0.0, 5.0)
    min_wider_wins: float = DEFAULT_MIN_WIDER_WINS

    def __post_init__(self) -> None:
        for name in ("compute_unit", "hours_unit"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        if self.resample not in ("runs", "rows", "residual"):
            raise ValueError(f"resample must be 'runs', 'rows' or 'residual', got {self.resample!r}")
        for name in ("frontier_L_inf", "sum_L_inf"):
            v = getattr(self, name)
            if not (v == "fit" or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                   and v >= 0)):
                raise ValueError(f"{name} must be 'fit' or a number >= 0, got {v!r}")


@dataclass(frozen=True)
class RunAnalysis:
    """The fits of one family, with their caveats.

    Attributes:
        label: the family (``kind`` or ``arch`` value; ``"all runs"`` without such a column).
        prepared: the rows fitted (after ``drop_first``/``ema``), a :class:`RunLog`.
        n_runs: learning curves in ``prepared``.
        kappa: FLOPs per parameter per atom used for the allocation; ``kappa_note`` says where it came from.
        frontier: eq. 4 on the loss-FLOPs frontier (compute in ``settings.compute_unit``), or None.
        frontier_points: indices into ``prepared`` of the FLOPs frontier.
        frontier_hours: eq. 4 on the loss-hours frontier (:math:`\\gamma_h`), or None.
        hours_points: indices of the hours frontier.
        sum_law: eq. 5, or None.
        optimum: eq. 6-7 (:class:`ComputeOptimal`, compute in ``compute_unit``), or None.
        consistency: table 1's comparison (:class:`Consistency`), or None.
        consistency_note: how the two sides were made comparable, or why the check was skipped.
        gates: every sanity check (:class:`~nnip_scaling.scaling.gates.Gate`), passed or not.
        warnings: fit warnings (``"sum law: ..."``) and the messages of failed gates.
        settings: the :class:`AnalysisSettings` used.
    """

    label: str
    prepared: RunLog
    n_runs: int
    kappa: float
    kappa_note: str
    settings: AnalysisSettings
    frontier: PowerLawFit | None = None
    frontier_points: tuple[int, ...] = ()
    frontier_hours: PowerLawFit | None = None
    hours_points: tuple[int, ...] = ()
    sum_law: SumPowerLawFit | None = None
    optimum: ComputeOptimal | None = None
    consistency: Consistency | None = None
    consistency_note: str = ""
    gates: tuple[Gate, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """Alias of ``label`` (the study's family)."""
        return self.label

    @property
    def gamma_c(self) -> float:
        """Direct compute exponent (eq. 4), NaN when not fitted."""
        return self.frontier.gamma if self.frontier is not None else math.nan

    @property
    def gamma_c_derived(self) -> float:
        """:math:`\\alpha\\beta/(\\alpha+\\beta)` from the sum law (eq. 7), NaN when not fitted."""
        return self.optimum.gamma_c if self.optimum is not None else math.nan

    @property
    def wider_wins(self) -> WiderWins | None:
        """The wider-wins gate (None when it was not computed)."""
        return next((g for g in self.gates if isinstance(g, WiderWins)), None)

    @property
    def failed_gates(self) -> tuple[Gate, ...]:
        return tuple(g for g in self.gates if not g.passed)

    def failures(self, symbol: str) -> tuple[Gate, ...]:
        """Failed gates that invalidate ``symbol`` (``"alpha"``, ``"beta"``, ``"gamma_c"``, ``"gamma_c_sum"``,
        ``"gamma_h"``, ``"a"``, ``"b"``), including through what it is derived from."""
        return tuple(g for g in self.failed_gates
                     if any(symbol in _DERIVED.get(s, (s,)) for s in g.symbols))

    def __str__(self) -> str:
        def ci(fit: Any, k: str) -> str:
            lo_hi = getattr(fit, "ci", {}).get(k)
            return f" [{lo_hi[0]:.3g}, {lo_hi[1]:.3g}]" if lo_hi else ""

        lines = [f"{self.label}: {len(self.prepared)} points from {self.n_runs} runs"]
        for name, fit, k in (("gamma_c", self.frontier, "gamma"), ("gamma_h", self.frontier_hours, "gamma"),
                             ("alpha", self.sum_law, "alpha"), ("beta", self.sum_law, "beta")):
            if fit is not None:
                flag = "  <- FAILED: " + "; ".join(g.message for g in self.failures(name)) \
                    if self.failures(name) else ""
                lines.append(f"  {name} = {getattr(fit, k):.3g}{ci(fit, k)}{flag}")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def split_families(runs: RunLog, *, by: str | None = "auto") -> list[tuple[str, RunLog]]:
    """Split a run log by family: its ``by`` column (``"auto"``: ``kind``, else ``arch``, else none).

    Returns:
        ``[(label, runs)]`` in order of first appearance; ``[("all runs", runs)]`` without a column.

    Raises:
        KeyError: ``by`` names a column the log does not have.
    """
    if by == "auto":
        by = next((c for c in ("kind", "arch") if c in runs.extra), None)
    if by is None:
        return [("all runs", runs)]
    if by not in runs.extra:
        raise KeyError(f"the run log has no column {by!r}; columns: {list(runs.columns)}")
    col = runs.extra[by].astype(str)
    return [(label, runs.select(col == label)) for label in dict.fromkeys(col.tolist())]


def _infer_kappa(runs: RunLog) -> tuple[float, str]:
    k = runs.flops / (3.0 * runs.N * runs.D)
    spread = float(k.max() / k.min())
    return float(np.median(k)), f"inferred from the log: median of flops / (3 N D), which spans a factor {spread:.3g}"


def _caught(prefix: str, caught: list[warnings.WarningMessage], out: list[str]) -> None:
    for w in caught:
        if issubclass(w.category, FitWarning):
            out.append(f"{prefix}: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _scheme(s: AnalysisSettings) -> str:
    """The sum-law fit's ``bootstrap=`` argument for ``s.resample`` (frontier fits always resample cases)."""
    return "residual" if s.resample == "residual" else "cases"


def _fit(prefix: str, notes: list[str], fn: Any, *args: Any, **kw: Any) -> Any:
    """``fn(*args, **kw)`` with its FitWarnings recorded under ``prefix``; None (and a note) on ValueError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FitWarning)
        try:
            result = fn(*args, **kw)
        except ValueError as err:
            notes.append(f"{prefix}: not fitted: {err}")
            result = None
    _caught(prefix, caught, notes)
    return result


def _frontier(x: np.ndarray, fam: RunLog, s: AnalysisSettings, groups: np.ndarray | None, notes: list[str],
              name: str, L_inf: float | str) -> tuple[PowerLawFit | None, tuple[int, ...]]:
    idx = pareto_frontier(x, fam.loss, run_id=fam.run_id, order=fam.tokens)
    fit = _fit(name, notes, fit_power_law, x[idx], fam.loss[idx], L_inf=L_inf, n_bootstrap=s.n_bootstrap,
               seed=s.seed, groups=None if groups is None else groups[idx], exponent_bounds=s.exponent_bounds)
    return fit, tuple(int(i) for i in idx)


def _like_with_like(front: PowerLawFit, sum_law: SumPowerLawFit, x: np.ndarray, fam: RunLog,
                    idx: tuple[int, ...], s: AnalysisSettings, groups: np.ndarray | None,
                    notes: list[str]) -> tuple[PowerLawFit | None, str]:
    """The frontier fit to compare with eq. 7: the same ``L_inf`` as the sum law, refitted if needed."""
    same = math.isclose(front.L_inf, sum_law.L_inf, rel_tol=1e-9, abs_tol=1e-12) and \
        ("L_inf" in front.fixed) == ("L_inf" in sum_law.fixed)
    if same:
        treatment = "fixed" if "L_inf" in sum_law.fixed else "fitted"
        return front, f"both sides with L_inf = {sum_law.L_inf:.4g} ({treatment} in both fits)"
    if sum_law.L_inf >= float(fam.loss[list(idx)].min()):
        return None, (f"skipped: the sum law's L_inf = {sum_law.L_inf:.4g} is not below the frontier's losses, "
                      "so the frontier cannot be refitted with it")
    refit = _fit("frontier (refit for consistency)", notes, fit_power_law, x[list(idx)], fam.loss[list(idx)],
                 L_inf=float(sum_law.L_inf), n_bootstrap=s.n_bootstrap, seed=s.seed,
                 groups=None if groups is None else groups[list(idx)], exponent_bounds=s.exponent_bounds)
    was = "fitted" if "L_inf" not in front.fixed else "fixed"
    return refit, (f"the frontier (eq. 4, L_inf {was} at {front.L_inf:.4g}) was refitted with the sum law's "
                   f"L_inf = {sum_law.L_inf:.4g} so that both sides share it")


def _gates(fam: RunLog, res: dict[str, Any], s: AnalysisSettings) -> list[Gate]:
    gates: list[Gate] = [wider_wins(fam.N, fam.D, fam.loss, min_fraction=s.min_wider_wins)]
    values: dict[str, float] = {}
    intervals: dict[str, tuple[float, float]] = {}
    for sym, fit, attr in (("gamma_c", res.get("frontier"), "gamma"), ("gamma_h", res.get("frontier_hours"), "gamma"),
                           ("alpha", res.get("sum_law"), "alpha"), ("beta", res.get("sum_law"), "beta")):
        if fit is None:
            continue
        values[sym] = float(getattr(fit, attr))
        if attr in fit.ci:
            intervals[sym] = fit.ci[attr]
    return gates + exponent_gates(values, intervals, bounds=s.exponent_bounds)


def _analyse_one(label: str, runs: RunLog, kappa: float | None, s: AnalysisSettings) -> RunAnalysis:
    fam = prepare_runs(runs, drop_first=s.drop_first, ema=s.ema)
    notes: list[str] = []
    groups = None if s.resample == "rows" else fam.run_id
    res: dict[str, Any] = {}
    x = fam.flops / s.compute_unit
    res["frontier"], res["frontier_points"] = _frontier(x, fam, s, groups, notes, "frontier", s.frontier_L_inf)
    if fam.hours is not None and np.all(fam.hours > 0):
        res["frontier_hours"], res["hours_points"] = _frontier(fam.hours / s.hours_unit, fam, s, groups, notes,
                                                               "hours frontier", s.frontier_L_inf)
    res["sum_law"] = _fit("sum law", notes, fit_sum_power_law, fam.N, fam.D, fam.loss, L_inf=s.sum_L_inf,
                          huber_delta=s.huber_delta, n_bootstrap=s.n_bootstrap, seed=s.seed, groups=groups,
                          bootstrap=_scheme(s),
                          n_starts=s.n_starts, exponent_bounds=s.exponent_bounds)
    kappa_note = "given"
    if kappa is None:
        kappa, kappa_note = _infer_kappa(fam)
    sl = res["sum_law"]
    note = ""
    if sl is not None and sl.alpha > 0 and sl.beta > 0:
        res["optimum"] = _fit("allocation", notes, compute_optimal, sl, kappa, compute_unit=s.compute_unit)
        if res["frontier"] is not None:
            front, note = _like_with_like(res["frontier"], sl, x, fam, res["frontier_points"], s, groups, notes)
            if front is not None:
                res["consistency"] = consistency(front, sl, kappa, compute_unit=s.compute_unit)
    elif sl is not None:
        notes.append("allocation: skipped (alpha or beta is 0: no compute-optimal trade-off)")
        note = "skipped: alpha or beta is 0"
    gates = _gates(fam, res, s)
    notes += [f"gate {g.name}: {g.message} {g.advice}".rstrip() for g in gates if not g.passed]
    return RunAnalysis(
        label=label, prepared=fam, n_runs=len(np.unique(fam.run_id)), kappa=float(kappa), kappa_note=kappa_note,
        settings=s, frontier=res["frontier"], frontier_points=res["frontier_points"],
        frontier_hours=res.get("frontier_hours"), hours_points=res.get("hours_points", ()), sum_law=sl,
        optimum=res.get("optimum"), consistency=res.get("consistency"), consistency_note=note,
        gates=tuple(gates), warnings=tuple(notes))


def analyse_runs(runs: RunLog, *, by: str | None = "auto", kappa: float | Mapping[str, float] | None = None,
                 settings: AnalysisSettings | None = None, **options: Any) -> dict[str, RunAnalysis]:
    """Fit the paper's laws to each family of a run log, with sanity gates (see the module docstring).

    Args:
        runs: the learning curves (:func:`~nnip_scaling.scaling.load_runs`, a study's ``runs.csv``).
        by: column naming the family (``"auto"``: ``kind``, else ``arch``; ``None``: one group).
        kappa: FLOPs per parameter per atom, one value or one per family (``None`` or a missing family:
            inferred from the log as ``median(flops / (3 N D))``).
        settings: an :class:`AnalysisSettings`; keyword ``options`` override its fields.

    Returns:
        family label -> :class:`RunAnalysis`, in order of first appearance in ``runs``. A fit that was
        impossible is ``None`` on the result, with the reason in its ``warnings``.

    Raises:
        TypeError: ``runs`` is not a RunLog.
        KeyError: ``by`` names a missing column.
        ValueError: bad settings, or a family whose points cannot be preprocessed.
    """
    if not isinstance(runs, RunLog):
        raise TypeError(f"runs must be a RunLog, got {type(runs).__name__}")
    s = settings or AnalysisSettings()
    if options:
        import dataclasses

        s = dataclasses.replace(s, **options)
    out: dict[str, RunAnalysis] = {}
    for label, fam in split_families(runs, by=by):
        k = kappa.get(label) if isinstance(kappa, Mapping) else kappa
        out[label] = _analyse_one(label, fam, k, s)
    return out
