"""FLOP counting (:func:`count_flops`) and the compute constant κ (:func:`estimate_kappa`).

Paper: section 4.1, eq. (3) ``C ≈ 3·κ·N·D``; figure 2. See docs/flops.md.
"""

from nnip_scaling.flops.counter import FlopReport, count_flops

__all__ = ["FlopReport", "count_flops"]
