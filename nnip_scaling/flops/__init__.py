"""FLOP counting (:func:`count_flops`), the compute constant κ (:func:`estimate_kappa`) and its
analytic cross-check from parameter placement (:func:`predicted_kappa`).

Paper: section 4.1, eq. (3) ``C ≈ 3·κ·N·D``; figure 2. See docs/flops.md.
"""

from nnip_scaling.flops.counter import FlopReport, UncountedOpsWarning, count_flops
from nnip_scaling.flops.families import FamilyKappa, FamilyKappaRow, default_widths, family_kappa, kappa_table
from nnip_scaling.flops.kappa import (
    PAPER_KAPPA,
    PROBE_SOURCES,
    KappaDriftWarning,
    KappaEstimate,
    KappaPoint,
    KappaRow,
    estimate_kappa,
    probe_graphs,
)
from nnip_scaling.flops.placement import KappaPrediction, ParameterUse, parameter_placement, predicted_kappa

__all__ = [
    "FamilyKappa",
    "FamilyKappaRow",
    "FlopReport",
    "KappaDriftWarning",
    "KappaEstimate",
    "KappaPoint",
    "KappaPrediction",
    "KappaRow",
    "PAPER_KAPPA",
    "UncountedOpsWarning",
    "PROBE_SOURCES",
    "ParameterUse",
    "count_flops",
    "default_widths",
    "estimate_kappa",
    "family_kappa",
    "kappa_table",
    "parameter_placement",
    "predicted_kappa",
    "probe_graphs",
]
