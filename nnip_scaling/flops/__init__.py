"""FLOP counting (:func:`count_flops`) and the compute constant κ (:func:`estimate_kappa`).

Paper: section 4.1, eq. (3) ``C ≈ 3·κ·N·D``; figure 2. See docs/flops.md.
"""

from nnip_scaling.flops.counter import FlopReport, count_flops
from nnip_scaling.flops.kappa import (
    KappaDriftWarning,
    KappaEstimate,
    KappaPoint,
    KappaRow,
    estimate_kappa,
    probe_graphs,
)

__all__ = [
    "FlopReport",
    "KappaDriftWarning",
    "KappaEstimate",
    "KappaPoint",
    "KappaRow",
    "count_flops",
    "estimate_kappa",
    "probe_graphs",
]
