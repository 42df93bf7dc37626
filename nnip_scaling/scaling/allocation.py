"""Compute-optimal allocation of parameters and data, paper section 4.3 (eq. 6-7), table 1.

Minimising the sum law ``L(N, D) = L_inf + A N^-alpha + B D^-beta`` (eq. 5) under the compute
constraint ``C = 3 kappa N D`` (eq. 3 and 6) gives, with ``xi = 3 kappa``,

.. math::

    N^*(C) = G\\,(C/\\xi)^{a}, \\qquad D^*(C) = G^{-1}(C/\\xi)^{b}, \\qquad
    G = \\Big(\\frac{\\alpha A}{\\beta B}\\Big)^{1/(\\alpha+\\beta)}, \\quad
    a = \\frac{\\beta}{\\alpha+\\beta}, \\quad b = \\frac{\\alpha}{\\alpha+\\beta},

and, substituting back, the loss along the compute-optimal frontier (eq. 7)

.. math::

    L(C) = L_\\infty + F_c\\, C^{-\\gamma_c}, \\qquad
    F_c = (A G^{-\\alpha} + B G^{\\beta})\\, \\xi^{\\gamma_c}, \\qquad
    \\gamma_c = \\frac{\\alpha\\beta}{\\alpha+\\beta}.

(``N^* D^* xi = C`` exactly, since ``a + b = 1``.) With ``C`` measured in units of ``compute_unit``
FLOPs (table 1 uses PFLOPs, ``compute_unit=1e15``) ``F_c`` is multiplied by ``compute_unit**-gamma_c``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from nnip_scaling.scaling._summary import format_value, short_repr, summary_table
from nnip_scaling.scaling._validate import check_real
from nnip_scaling.scaling.fit import PowerLawFit, SumPowerLawFit

__all__ = ["ComputeOptimal", "Consistency", "compute_optimal", "consistency"]


@dataclass(frozen=True)
class ComputeOptimal:
    """Compute-optimal allocation derived from a sum-law fit (paper eq. 6-7).

    Attributes:
        a, b: exponents of ``N*(C) ~ C^a`` and ``D*(C) ~ C^b`` (``a + b = 1``).
        G: the allocation constant ``(alpha A / (beta B))^(1/(alpha+beta))``.
        F_c, gamma_c: loss-compute frontier ``L(C) = L_inf + F_c C^-gamma_c`` with ``C`` in units of
            ``compute_unit`` FLOPs.
        L_inf: irreducible loss of the sum-law fit.
        kappa: forward FLOPs per parameter per atom (``C = 3 kappa N D``).
        compute_unit: FLOPs per unit of ``C`` (1e15 for PFLOPs).
        ci: symbol -> ``(low, high)`` interval propagated from the sum-law bootstrap draws (empty when
            the fit has none).
        samples: symbol -> propagated draws.

    ``print(opt)`` shows the allocation and frontier with their intervals; ``repr`` is one line.
    """

    a: float
    b: float
    G: float
    F_c: float
    gamma_c: float
    L_inf: float = 0.0
    kappa: float = math.nan
    compute_unit: float = 1.0
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    symbols = ("a", "b", "G", "F_c", "gamma_c")

    def summary(self) -> str:
        """The text ``print(opt)`` shows."""
        n_draws = len(self.samples["a"]) if self.samples else 0
        unit = "FLOPs" if self.compute_unit == 1 else f"{format_value(self.compute_unit)} FLOPs"
        facts = [f"kappa: {format_value(self.kappa)}", f"C in units of {unit}",
                 f"L_inf: {format_value(self.L_inf)}",
                 f"intervals: propagated from {n_draws} bootstrap draws" if n_draws else "intervals: none"]
        return summary_table(
            "Compute-optimal allocation   N* ~ C^a, D* ~ C^b, L(C) = L_inf + F_c C^-gamma_c (eq. 6-7)",
            facts, {k: getattr(self, k) for k in self.symbols}, self.ci,
            confidence=None, notes=["N*(C) = G (C / 3 kappa)^a,  D*(C) = (C / 3 kappa)^b / G"])

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return short_repr("ComputeOptimal", {k: getattr(self, k) for k in self.symbols},
                          kappa=format_value(self.kappa), compute_unit=format_value(self.compute_unit))

    @staticmethod
    def _check(C: ArrayLike) -> np.ndarray:
        C = np.asarray(C, dtype=np.float64)
        if np.any(~np.isfinite(C)) or np.any(C <= 0):
            raise ValueError("C must be finite and positive (in units of compute_unit FLOPs)")
        return C

    def _flops(self, C: ArrayLike) -> np.ndarray:
        return self._check(C) * self.compute_unit

    def N_opt(self, C: ArrayLike) -> np.ndarray:
        """Compute-optimal model size ``N*(C) = G (C / 3 kappa)^a`` (``C`` in ``compute_unit``).

        Shapes:
            C: any shape; returns the same shape.
        """
        return self.G * np.power(self._flops(C) / (3.0 * self.kappa), self.a)

    def D_opt(self, C: ArrayLike) -> np.ndarray:
        """Compute-optimal data size ``D*(C) = G^-1 (C / 3 kappa)^b`` (``C`` in ``compute_unit``).

        Shapes:
            C: any shape; returns the same shape.
        """
        return np.power(self._flops(C) / (3.0 * self.kappa), self.b) / self.G

    def loss(self, C: ArrayLike) -> np.ndarray:
        """Loss at the compute-optimal allocation, ``L_inf + F_c C^-gamma_c`` (eq. 7).

        Shapes:
            C: any shape; returns the same shape.
        """
        C = self._check(C)
        return self.L_inf + self.F_c * np.power(C, -self.gamma_c)


def _allocation(A, B, alpha, beta, kappa, compute_unit):
    """Vectorised eq. 6-7 -> (a, b, G, F_c, gamma_c) for arrays or scalars."""
    s = alpha + beta
    a = beta / s
    b = alpha / s
    G = np.power(alpha * A / (beta * B), 1.0 / s)
    gamma_c = alpha * beta / s
    xi = 3.0 * kappa
    F_c = (A * np.power(G, -alpha) + B * np.power(G, beta)) * np.power(xi / compute_unit, gamma_c)
    return a, b, G, F_c, gamma_c


def compute_optimal(fit: SumPowerLawFit, kappa: float, *, compute_unit: float = 1.0) -> ComputeOptimal:
    """Compute-optimal allocation (paper eq. 6-7) from a sum-law fit and ``kappa``.

    Args:
        fit: a :class:`SumPowerLawFit` (fitted, or built from published values).
        kappa: forward FLOPs per parameter per atom (``C = 3 kappa N D``, eq. 3).
        compute_unit: FLOPs per unit of compute in which ``F_c`` and the methods' ``C`` are expressed
            (``1e15``: PFLOPs, as in the paper's table 1).

    Returns:
        :class:`ComputeOptimal`; its ``ci`` holds intervals propagated through eq. 6-7 from each
        bootstrap draw of ``fit`` (at ``fit.confidence``) when the fit has draws.

    Raises:
        TypeError: ``fit`` is not a SumPowerLawFit.
        ValueError: non-positive ``kappa``/``compute_unit``, or non-positive A, B, alpha, beta.
    """
    if not isinstance(fit, SumPowerLawFit):
        raise TypeError(f"fit must be a SumPowerLawFit, got {type(fit).__name__}")
    kappa = check_real("kappa", kappa, low=0.0, high=math.inf)
    compute_unit = check_real("compute_unit", compute_unit, low=0.0, high=math.inf)
    for name in ("A", "B", "alpha", "beta"):
        v = getattr(fit, name)
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"fit.{name} must be positive and finite for the allocation, got {v!r}")
    a, b, G, F_c, gamma_c = (float(v) for v in _allocation(
        fit.A, fit.B, fit.alpha, fit.beta, kappa, compute_unit))
    samples: dict[str, np.ndarray] = {}
    ci: dict[str, tuple[float, float]] = {}
    if fit.samples:
        s = fit.samples
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            vals = _allocation(s["A"], s["B"], s["alpha"], s["beta"], kappa, compute_unit)
        samples = dict(zip(ComputeOptimal.symbols, (np.asarray(v, dtype=np.float64) for v in vals),
                           strict=True))
        q = [(1 - fit.confidence) / 2, (1 + fit.confidence) / 2]
        for k, v in samples.items():
            # A draw with a zero exponent has no finite allocation; such draws count as unbounded.
            v = np.where(np.isfinite(v), v, np.inf)
            with np.errstate(invalid="ignore"):  # inf - inf between two unbounded draws: the bound is inf
                lo, hi = np.nan_to_num(np.quantile(v, q), nan=np.inf)
            ci[k] = (float(lo), float(hi))
    return ComputeOptimal(a=a, b=b, G=G, F_c=F_c, gamma_c=gamma_c, L_inf=float(fit.L_inf),
                          kappa=kappa, compute_unit=compute_unit, ci=ci, samples=samples)


@dataclass(frozen=True)
class Consistency:
    """The two estimates of the loss-compute frontier of table 1.

    ``*_frontier`` comes from the power law fitted directly to the Pareto frontier (eq. 4);
    ``*_sum`` is derived from the sum-law fit (eq. 7). ``ci_*`` map ``"gamma_c"`` and ``"F_c"`` to
    their intervals (empty when the fit had no bootstrap).
    """

    gamma_c_frontier: float
    gamma_c_sum: float
    F_c_frontier: float
    F_c_sum: float
    ci_frontier: dict[str, tuple[float, float]] = field(default_factory=dict)
    ci_sum: dict[str, tuple[float, float]] = field(default_factory=dict)
    compute_unit: float = 1.0

    def summary(self) -> str:
        """The text ``print(c)`` shows: both estimates side by side with their intervals."""
        heavy, light = "=" * 78, "-" * 78

        def row(name: str, frontier: float, derived: float) -> str:
            cells = []
            for value, ci in ((frontier, self.ci_frontier), (derived, self.ci_sum)):
                lo_hi = ci.get(name)
                cells.append(format_value(value) + (f" [{format_value(lo_hi[0])}, {format_value(lo_hi[1])}]"
                                                    if lo_hi else ""))
            return f"{name:<9}{cells[0]:>30}{cells[1]:>34}"

        overlap = self.gamma_c_intervals_overlap
        verdict = ("no intervals (fits without bootstrap)" if overlap is None
                   else "gamma_c intervals overlap" if overlap else "gamma_c intervals do NOT overlap")
        return "\n".join([
            heavy, "Loss-compute frontier: fitted (eq. 4) vs derived from the sum law (eq. 7)", heavy,
            f"{'':<9}{'frontier fit (eq. 4)':>30}{'sum law (eq. 7)':>34}", light,
            row("gamma_c", self.gamma_c_frontier, self.gamma_c_sum),
            row("F_c", self.F_c_frontier, self.F_c_sum), heavy,
            f"difference gamma_c: {self.gamma_c_difference:+.4f}    ratio F_c: {self.F_c_ratio:.4g}    {verdict}",
        ])

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return short_repr("Consistency", {"gamma_c_frontier": self.gamma_c_frontier,
                                          "gamma_c_sum": self.gamma_c_sum, "F_c_frontier": self.F_c_frontier,
                                          "F_c_sum": self.F_c_sum})

    @property
    def gamma_c_difference(self) -> float:
        """``gamma_c_sum - gamma_c_frontier``."""
        return self.gamma_c_sum - self.gamma_c_frontier

    @property
    def F_c_ratio(self) -> float:
        """``F_c_sum / F_c_frontier``."""
        return self.F_c_sum / self.F_c_frontier

    @property
    def gamma_c_intervals_overlap(self) -> bool | None:
        """Whether the two ``gamma_c`` intervals overlap (None without intervals)."""
        if "gamma_c" not in self.ci_frontier or "gamma_c" not in self.ci_sum:
            return None
        (l1, h1), (l2, h2) = self.ci_frontier["gamma_c"], self.ci_sum["gamma_c"]
        return bool(l1 <= h2 and l2 <= h1)


def consistency(frontier_fit: PowerLawFit, sum_fit: SumPowerLawFit, kappa: float, *,
                compute_unit: float = 1.0) -> Consistency:
    """Compare gamma_c and F_c fitted on the frontier (eq. 4) with those derived from eq. 7 (table 1).

    Agreement says the two power laws describe the same runs consistently (paper section 4.3).

    Args:
        frontier_fit: :func:`fit_power_law` of frontier loss against compute **in FLOPs divided by
            compute_unit** (compute in hours cannot be compared).
        sum_fit: :func:`fit_sum_power_law` result.
        kappa: forward FLOPs per parameter per atom.
        compute_unit: FLOPs per unit of the frontier fit's compute axis.

    Returns:
        :class:`Consistency`. Note the derivation assumes the same ``L_inf`` in both fits (the paper
        uses ~0 in both).
    """
    if not isinstance(frontier_fit, PowerLawFit):
        raise TypeError(f"frontier_fit must be a PowerLawFit, got {type(frontier_fit).__name__}")
    opt = compute_optimal(sum_fit, kappa, compute_unit=compute_unit)
    ci_frontier = {"gamma_c": frontier_fit.ci["gamma"], "F_c": frontier_fit.ci["F"]} \
        if frontier_fit.ci else {}
    ci_sum = {k: opt.ci[k] for k in ("gamma_c", "F_c")} if opt.ci else {}
    return Consistency(
        gamma_c_frontier=frontier_fit.gamma, gamma_c_sum=opt.gamma_c,
        F_c_frontier=frontier_fit.F, F_c_sum=opt.F_c,
        ci_frontier=ci_frontier, ci_sum=ci_sum, compute_unit=compute_unit,
    )
