"""Scaling laws: Pareto frontiers, power-law and sum-power-law fits with bootstrap intervals, and
compute-optimal allocation (paper sections 4.1-4.3, appendix E; Hoffmann et al. 2022 approaches 1
and 3 with the corrections of Besiroglu et al. 2024); :func:`analyse_runs` chains them per family and
checks the result with sanity gates (:mod:`nnip_scaling.scaling.gates`). See docs/scaling.md.

Pure numpy/scipy: nothing here imports torch or the model code. Plots need matplotlib
(``pip install 'nnip_scaling[plot]'``) and live in :mod:`nnip_scaling.scaling.plot`.
"""

from nnip_scaling.scaling.allocation import ComputeOptimal, Consistency, compute_optimal, consistency
from nnip_scaling.scaling.analysis import AnalysisSettings, RunAnalysis, analyse_runs, split_families
from nnip_scaling.scaling.fit import (
    FitWarning,
    PowerLawFit,
    SumPowerLawFit,
    fit_power_law,
    fit_sum_power_law,
)
from nnip_scaling.scaling.frontier import pareto_frontier, prepare_runs, smooth_ema, warmup_mask
from nnip_scaling.scaling.laws import power_law, sum_power_law
from nnip_scaling.scaling.runs import RunLog, load_runs, save_runs

__all__ = [
    "AnalysisSettings",
    "RunAnalysis",
    "analyse_runs",
    "split_families",
    "ComputeOptimal",
    "Consistency",
    "FitWarning",
    "PowerLawFit",
    "RunLog",
    "SumPowerLawFit",
    "compute_optimal",
    "consistency",
    "fit_power_law",
    "fit_sum_power_law",
    "load_runs",
    "pareto_frontier",
    "power_law",
    "prepare_runs",
    "save_runs",
    "smooth_ema",
    "sum_power_law",
    "warmup_mask",
]
