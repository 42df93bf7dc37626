"""The study's analysis: :func:`~nnip_scaling.scaling.analyse_runs` on its runs, with the study's settings
(κ measured per family, warm-up dropped, sum law bootstrapped with the design fixed (per-run residual curves resampled), frontiers by whole runs, :math:`L_\\infty = 0` in both laws as in
the paper), and the ranking of the families by their compute exponent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nnip_scaling.scaling.analysis import AnalysisSettings, RunAnalysis, analyse_runs
from nnip_scaling.study.config import StudyConfig

__all__ = ["BOOTSTRAP", "PFLOP", "analysis_settings", "analyse_study", "rank_families"]

PFLOP = 1e15
#: How the study's intervals are bootstrapped (recorded in report.md and report.json). The widths and data
#: sizes are set by the plan, not drawn at random, so the design stays fixed in every resample; resampling
#: whole runs instead leaves many resamples with one or two widths, where alpha is not identifiable. The
#: frontier fits (gamma_c, gamma_h) still resample whole runs: which points are on a frontier depends on the
#: losses, so there the design is not fixed.
BOOTSTRAP = "residual blocks per run, design fixed"
_SUM_LAW_STARTS = 8


def analysis_settings(config: StudyConfig) -> AnalysisSettings:
    """The fit settings of a study (compute in PFLOPs, as table 1)."""
    return AnalysisSettings(compute_unit=PFLOP, drop_first=config.drop_first, ema=config.ema, frontier_L_inf=0.0,
                            sum_L_inf=0.0, n_bootstrap=config.n_bootstrap, resample="residual", seed=config.seed,
                            n_starts=_SUM_LAW_STARTS, min_wider_wins=config.min_wider_wins)


def analyse_study(config: StudyConfig, runs: Any, kappas: Mapping[str, float]) -> dict[str, RunAnalysis]:
    """One :class:`~nnip_scaling.scaling.analysis.RunAnalysis` per family of ``config`` that logged points,
    in ``config`` order."""
    found = analyse_runs(runs, by="kind", kappa=dict(kappas), settings=analysis_settings(config))
    return {spec.kind: found[spec.kind] for spec in config.families if spec.kind in found}


def rank_families(fits: Mapping[str, RunAnalysis]) -> tuple[str, ...]:
    """Families with a frontier fit, by direct :math:`\\gamma_c` (eq. 4), largest first."""
    fitted = [f for f in fits.values() if f.frontier is not None]
    return tuple(f.label for f in sorted(fitted, key=lambda f: -f.gamma_c))


def reserve_seconds(config: StudyConfig) -> float:
    """Seconds kept for the fits, the report and the plots at the end: the sum-law fits dominate
    (``n_bootstrap + n_starts`` nonlinear refits per family, ~40 ms each on a free CPU core), times the
    slowdown of a machine loaded beyond twice its cores (the load average per core, halved; at most 2x, so
    that a loaded machine still leaves the runs most of a short budget)."""
    import os

    n = len(config.families)
    load = os.getloadavg()[0] / (os.cpu_count() or 1) if hasattr(os, "getloadavg") else 1.0
    return (8.0 + n * (2.0 + 0.05 * (config.n_bootstrap + _SUM_LAW_STARTS))) * min(2.0, max(1.0, load / 2.0))
