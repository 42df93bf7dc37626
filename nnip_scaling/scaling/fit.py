"""Fitting scaling laws with honest uncertainty: paper eq. (4) and eq. (5), appendix E.

Two fitters, one method:

* :func:`fit_power_law` fits ``L(x) = L_inf + F x^(-gamma)`` (eq. 4) to points of a loss-compute
  frontier (Hoffmann et al. 2022, approach 1).
* :func:`fit_sum_power_law` fits ``L(N, D) = L_inf + A N^(-alpha) + B D^(-beta)`` (eq. 5) to every
  ``(N, D, L)`` triplet of the learning curves (Hoffmann et al. 2022, approach 3).

Both minimise a loss on **log residuals** of the log-sum-exp form of the law,

.. math::

    r_i = \\log L_i - \\operatorname{LSE}(a - \\alpha \\log N_i,\\; b - \\beta \\log D_i,\\; \\log L_\\infty),
    \\qquad \\min_\\theta \\sum_i \\rho_\\delta(r_i),

with :math:`\\rho_\\delta` the Huber loss (``huber_delta``; ``None`` gives plain least squares), using
:func:`scipy.optimize.least_squares` (trust-region reflective, analytic Jacobian, bounds
``alpha, beta, gamma in exponent_bounds`` and ``L_inf >= 0``) run to tight tolerances (``1e-12``).
Log residuals make the fit independent of the loss scale. The default tolerances of quasi-Newton
optimisers are absolute below an objective of 1 and stop early at the ``1e-5``-sized objectives these
fits produce; that is the flaw Besiroglu et al. (2024) found in the original approach-3 fit, and
``tests/scaling/test_fit.py`` checks this fitter does not have it.

The global optimum is searched from a grid of starting points (exponents ``0.05 ... 2``, amplitudes
around the data): the whole grid is scored in one vectorised pass, the ``n_starts`` best points are
refined locally (each first by least squares, which converges in a few evaluations and lands next to
the Huber optimum, then by the Huber fit itself), the best refined fit wins. A :class:`FitWarning` is emitted when the optimum sits on a
bound, when too few refined starts agree on the best objective, or when the parameters are not
identifiable from the data (rank-deficient Jacobian at the optimum, or agreeing starts with different
parameters).

Confidence intervals (appendix E) are percentile intervals of ``n_bootstrap`` bootstrap refits, by
one of two schemes (``bootstrap=``):

* ``"cases"`` (default): resample rows, or whole runs when ``groups`` is given (pairs bootstrap).
  Right when the points are random draws; with few model sizes, many resamples hold only one or two
  distinct ``N`` and ``alpha`` is not identifiable in them, so its draws run to the bound.
* ``"residual"``: the design is fixed (Efron & Tibshirani 1993, ch. 9: bootstrapping residuals),
  as in a scaling study whose widths and data sizes the experimenter chose. Every resample keeps all
  ``(N, D)`` rows; its responses are ``y* = log m(theta_hat) + r*`` in the log space the Huber
  objective uses. Points of one learning curve have correlated residuals, so ``r*`` is drawn in
  blocks: the residual curve of each run (sorted by ``D``, or ``x``) is replaced by the whole
  curve of a run drawn with replacement among the runs with the same number of points (in a study,
  the runs sharing the evaluation schedule). A run with no such partner gets a circular
  moving-block resample of its own curve; without ``groups`` every point is its own block (the plain
  residual bootstrap).

Each refit starts from the full-data optimum (warm start), which makes 1000 bootstraps of a
250-point sum-law fit take seconds.
The bootstrap draws are kept in ``fit.samples`` so that derived quantities
(:func:`nnip_scaling.scaling.compute_optimal`) get intervals by propagation.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares

from nnip_scaling.scaling._validate import (
    as_groups,
    as_positive_1d,
    check_int,
    check_real,
    same_length,
)
from nnip_scaling.scaling._summary import format_value, short_repr, summary_table
from nnip_scaling.scaling.laws import power_law, sum_power_law

__all__ = ["FitWarning", "PowerLawFit", "SumPowerLawFit", "fit_power_law", "fit_sum_power_law"]

# Tolerances for least_squares (ftol, xtol, gtol). 1e-12 is far below the default 1e-8 and still
# well above machine epsilon, which scipy would otherwise clamp to.
_TOL = 1e-12
# Exponent grid of the multi-start search (Hoffmann et al. used 0, 0.5, ..., 2).
_EXPONENT_GRID = (0.05, 0.15, 0.3, 0.5, 0.8, 1.2, 2.0)
# Offsets (in log units) of each term's amplitude relative to the mean log loss at the mean log scale.
_AMPLITUDE_OFFSETS = (-3.0, -1.5, -0.5, 0.5)
# L_inf starting values as fractions of the smallest loss.
_LINF_FRACTIONS = (0.0, 0.3, 0.9)
# A fitted L_inf below this fraction of the smallest loss changes no prediction by more than 1e-6
# (relative): it is reported as exactly 0, on its bound.
_LINF_ZERO = 1e-6
# Bootstrap schemes: resample cases (rows or whole runs), or residuals with the design fixed.
_BOOTSTRAP_KINDS = ("cases", "residual")


class FitWarning(UserWarning):
    """A fit finished but its result needs care (on a bound, starts disagree, not identifiable)."""


# ----------------------------------------------------------------------------------------------
# Result objects


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law`: ``L(x) = L_inf + F * x**(-gamma)`` (paper eq. 4).

    Attributes:
        F, gamma, L_inf: fitted values (``L_inf`` is the fixed value when it was not fitted).
        ci: symbol -> ``(low, high)`` percentile bootstrap interval at ``confidence`` (95% by default);
            a fixed symbol has ``(value, value)``; empty when ``n_bootstrap == 0``.
        samples: symbol -> bootstrap draws ``[n_bootstrap]`` (empty when no bootstrap).
        n_points: number of points fitted.
        fixed: symbols held fixed (``("L_inf",)`` unless ``L_inf="fit"``).
        objective: final value of ``sum_i rho(r_i)`` on the full data.
        confidence: level of ``ci``.
        warnings: the messages of the :class:`FitWarning` s the fit emitted (also shown by ``print``).
        bootstrap: what the intervals resampled: ``"rows"``, ``"runs"`` (whole groups), ``"residual
            blocks per run, design fixed"``, ``"residuals, design fixed"``; ``""`` when not bootstrapped.

    ``print(fit)`` shows a summary table (parameters, intervals, objective, warnings); ``repr`` is
    one line.
    """

    F: float
    gamma: float
    L_inf: float
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    n_points: int = 0
    fixed: tuple[str, ...] = ()
    objective: float = math.nan
    confidence: float = 0.95
    warnings: tuple[str, ...] = field(default=(), compare=False)
    bootstrap: str = ""

    symbols = ("F", "gamma", "L_inf")

    def summary(self) -> str:
        """The text ``print(fit)`` shows: parameters with intervals, objective, warnings."""
        return summary_table(
            "Power law   L(x) = L_inf + F x^-gamma   (paper eq. 4)",
            _facts(self.n_points, self.objective, self.samples, self.confidence, self.bootstrap),
            {k: getattr(self, k) for k in self.symbols}, self.ci, confidence=self.confidence,
            fixed=self.fixed, warnings=self.warnings)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return short_repr("PowerLawFit", {k: getattr(self, k) for k in self.symbols},
                          n_points=self.n_points, objective=format_value(self.objective),
                          warnings=len(self.warnings))

    def predict(self, x: ArrayLike) -> np.ndarray:
        """Loss predicted at ``x`` (same shape as ``x``)."""
        return power_law(x, self.F, self.gamma, self.L_inf)

    def band(self, x: ArrayLike, *, confidence: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap band ``(low, high)`` of the predicted loss at ``x``.

        Shapes:
            x: ``[m]``; returns two arrays ``[m]``.
        """
        if not self.samples:
            raise ValueError("this fit has no bootstrap samples (it was fitted with n_bootstrap=0)")
        conf = self.confidence if confidence is None else check_real(
            "confidence", confidence, low=0.0, high=1.0)
        x = np.asarray(x, dtype=np.float64)
        pred = power_law(x[None, :], self.samples["F"][:, None], self.samples["gamma"][:, None],
                         self.samples["L_inf"][:, None])
        lo, hi = np.quantile(pred, [(1 - conf) / 2, (1 + conf) / 2], axis=0)
        return lo, hi


@dataclass(frozen=True)
class SumPowerLawFit:
    """Result of :func:`fit_sum_power_law`: ``L = L_inf + A N^-alpha + B D^-beta`` (paper eq. 5).

    Can also be built by hand from published numbers, e.g. the paper's table 7:
    ``SumPowerLawFit(L_inf=0.0, A=10**3.760, B=10**5.129, alpha=0.817, beta=0.753)``.

    Attributes:
        L_inf, A, B, alpha, beta: fitted values (paper's symbols).
        ci: symbol -> ``(low, high)`` percentile bootstrap interval (fixed symbols: ``(v, v)``; empty
            when not bootstrapped).
        samples: symbol -> bootstrap draws ``[n_bootstrap]``.
        n_points: number of ``(N, D, L)`` triplets fitted.
        fixed: symbols held fixed.
        objective: final ``sum_i rho(r_i)`` on the full data.
        n_starts, n_agree: local refinements run, and how many reached the best objective.
        confidence: level of ``ci``.
        warnings: the messages of the :class:`FitWarning` s the fit emitted (also shown by ``print``).
        bootstrap: what the intervals resampled: ``"rows"``, ``"runs"`` (whole groups), ``"residual
            blocks per run, design fixed"``, ``"residuals, design fixed"``; ``""`` when not bootstrapped.

    ``print(fit)`` shows a summary table (parameters, intervals, objective, starts, warnings);
    ``repr`` is one line.
    """

    L_inf: float
    A: float
    B: float
    alpha: float
    beta: float
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    n_points: int = 0
    fixed: tuple[str, ...] = ()
    objective: float = math.nan
    n_starts: int = 0
    n_agree: int = 0
    confidence: float = 0.95
    warnings: tuple[str, ...] = field(default=(), compare=False)
    bootstrap: str = ""

    symbols = ("L_inf", "A", "B", "alpha", "beta")

    def summary(self) -> str:
        """The text ``print(fit)`` shows: parameters with intervals, objective, starts, warnings."""
        facts = _facts(self.n_points, self.objective, self.samples, self.confidence, self.bootstrap)
        if self.n_starts:
            facts.append(f"starts: {self.n_agree} of {self.n_starts} reached the optimum")
        return summary_table(
            "Sum power law   L(N, D) = L_inf + A N^-alpha + B D^-beta   (paper eq. 5)",
            facts, {k: getattr(self, k) for k in self.symbols}, self.ci, confidence=self.confidence,
            fixed=self.fixed, warnings=self.warnings)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return short_repr("SumPowerLawFit", {k: getattr(self, k) for k in self.symbols},
                          n_points=self.n_points, objective=format_value(self.objective),
                          warnings=len(self.warnings))

    def predict(self, N: ArrayLike, D: ArrayLike) -> np.ndarray:
        """Loss predicted at model size ``N`` and data size ``D`` (broadcast shape)."""
        return sum_power_law(N, D, self.L_inf, self.A, self.B, self.alpha, self.beta)


def _facts(n_points: int, objective: float, samples: Mapping[str, np.ndarray], confidence: float,
           scheme: str = "") -> list[str]:
    n_draws = len(next(iter(samples.values()))) if samples else 0
    how = f", resampling {scheme}" if scheme else ""
    boot = (f"bootstrap: {n_draws} draws, {100 * confidence:g}% percentile intervals{how}" if n_draws
            else "bootstrap: none (no intervals)")
    facts = [f"points: {n_points}" if n_points else "built by hand (not fitted)"]
    if math.isfinite(objective):
        facts.append(f"objective: {format_value(objective)}")
    return facts + [boot]


_Fit = TypeVar("_Fit", PowerLawFit, SumPowerLawFit)


def _keeps_warnings(fitter: Callable[..., _Fit]) -> Callable[..., _Fit]:
    """Store the messages of the FitWarnings a fitter emits in its result (they are still emitted).

    Warnings are recorded, then re-issued at their original location after the fit, so the user's
    warning filters (``ignore``, ``error``) apply exactly as without recording.
    """

    @functools.wraps(fitter)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = fitter(*args, **kwargs)
            finally:
                pending = list(caught)
        for w in pending:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        notes = tuple(str(w.message) for w in pending if issubclass(w.category, FitWarning))
        return dataclasses.replace(result, warnings=notes) if notes else result

    return wrapper


# ----------------------------------------------------------------------------------------------
# The log-sum-exp model shared by both fitters


class _LogSumModel:
    """``log m_i = LSE_k(a_k - alpha_k * logx_ik, log E)`` with residuals ``r_i = y_i - log m_i``.

    Parameters ``theta = [a_1..a_K, alpha_1..alpha_K]`` plus ``eps`` when ``E`` is fitted, with
    ``E = eps * scale`` (``scale`` = median loss, so every parameter is O(1)).

    Shapes:
        logx: ``[n, K]``; y: ``[n]``; theta: ``[P]`` or batched ``[G, P]``.
    """

    def __init__(self, logx: np.ndarray, y: np.ndarray, *, E: float | None, scale: float) -> None:
        self.logx = logx
        self.y = y
        self.K = logx.shape[1]
        self.fit_E = E is None
        self.E = 0.0 if E is None else float(E)
        self.scale = scale
        self.n_params = 2 * self.K + (1 if self.fit_E else 0)

    def subset(self, idx: np.ndarray) -> _LogSumModel:
        return _LogSumModel(self.logx[idx], self.y[idx], E=None if self.fit_E else self.E,
                            scale=self.scale)

    def with_y(self, y: np.ndarray) -> _LogSumModel:
        """The same design (``logx``) with new responses ``y [n]``."""
        return _LogSumModel(self.logx, y, E=None if self.fit_E else self.E, scale=self.scale)

    def _E(self, theta: np.ndarray) -> np.ndarray:
        return theta[..., 2 * self.K] * self.scale if self.fit_E else np.full(theta.shape[:-1], self.E)

    def log_model(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(log m [..., n], t [..., n, K])`` for ``theta [..., P]``."""
        K = self.K
        a = theta[..., None, :K]
        alpha = theta[..., None, K:2 * K]
        t = a - alpha * self.logx  # [..., n, K]
        with np.errstate(divide="ignore"):
            logE = np.log(self._E(theta))[..., None]
        lm = np.logaddexp.reduce(t, axis=-1) if K > 1 else t[..., 0]
        lm = np.logaddexp(lm, logE)
        return lm, t

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        return self.y - self.log_model(theta)[0]

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        K = self.K
        lm, t = self.log_model(theta)
        w = np.exp(t - lm[:, None])  # [n, K] share of each term in the model
        J = np.empty((self.y.size, self.n_params))
        J[:, :K] = -w
        J[:, K:2 * K] = self.logx * w
        if self.fit_E:
            # d log m / d eps = scale / m; capped so a trial point with a vanishing model stays finite.
            J[:, 2 * K] = -self.scale * np.exp(np.minimum(-lm, 700.0))
        return J


def _rho(r: np.ndarray, delta: float | None) -> np.ndarray:
    """Huber loss ``0.5 r^2`` (``|r| <= delta``) / ``delta (|r| - delta/2)``; squared if delta is None."""
    if delta is None:
        return 0.5 * r * r
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _bounds(model: _LogSumModel, exponent_bounds: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    K = model.K
    lb = np.concatenate([np.full(K, -np.inf), np.full(K, exponent_bounds[0])])
    ub = np.concatenate([np.full(K, np.inf), np.full(K, exponent_bounds[1])])
    if model.fit_E:
        lb = np.append(lb, 0.0)
        ub = np.append(ub, np.inf)
    return lb, ub


def _local_fit(model: _LogSumModel, x0: np.ndarray, lb: np.ndarray, ub: np.ndarray,
               delta: float | None):
    x0 = np.clip(x0, lb, ub)
    return least_squares(
        model.residuals, x0, jac=model.jacobian, bounds=(lb, ub), method="trf",
        loss="linear" if delta is None else "huber", f_scale=1.0 if delta is None else delta,
        ftol=_TOL, xtol=_TOL, gtol=_TOL, max_nfev=200 * (model.n_params + 1),
    )


def _grid(model: _LogSumModel, min_loss: float, exponent_bounds: tuple[float, float]) -> np.ndarray:
    """Starting grid ``[G, P]``: exponents x amplitude offsets per term, x L_inf fractions."""
    K = model.K
    ybar = float(model.y.mean())
    lxbar = model.logx.mean(axis=0)
    exps = [e for e in _EXPONENT_GRID if exponent_bounds[0] <= e <= exponent_bounds[1]]
    if not exps:
        exps = [0.5 * (exponent_bounds[0] + exponent_bounds[1])]
    # A term alone at its mean scale contributes exp(ybar + offset) to the loss.
    per_term = [np.array([(ybar + s + e * lxbar[k], e) for e in exps for s in _AMPLITUDE_OFFSETS])
                for k in range(K)]
    mesh = np.meshgrid(*[np.arange(len(p)) for p in per_term], indexing="ij")
    combos = np.stack([m.reshape(-1) for m in mesh], axis=1)  # [G0, K]
    a = np.stack([per_term[k][combos[:, k], 0] for k in range(K)], axis=1)
    alpha = np.stack([per_term[k][combos[:, k], 1] for k in range(K)], axis=1)
    theta = np.concatenate([a, alpha], axis=1)
    if model.fit_E:
        eps = np.array(_LINF_FRACTIONS) * min_loss / model.scale
        theta = np.concatenate([np.repeat(theta, len(eps), axis=0),
                                np.tile(eps, len(theta))[:, None]], axis=1)
    return theta


def _score(model: _LogSumModel, thetas: np.ndarray, delta: float | None, chunk: int = 512) -> np.ndarray:
    """Objective ``sum rho(r)`` for a batch of parameter vectors ``[G, P]`` -> ``[G]``."""
    out = np.empty(len(thetas))
    for s in range(0, len(thetas), chunk):
        lm, _ = model.log_model(thetas[s:s + chunk])
        out[s:s + chunk] = _rho(model.y - lm, delta).sum(axis=-1)
    return out


@dataclass(frozen=True)
class _Optimum:
    theta: np.ndarray
    cost: float
    n_starts: int
    n_agree: int
    spread: np.ndarray  # max |theta - theta_best| over agreeing starts, per parameter


def _optimise(model: _LogSumModel, starts: np.ndarray, lb: np.ndarray, ub: np.ndarray,
              delta: float | None) -> _Optimum:
    results = []
    for x0 in starts:
        if delta is not None:
            # Least-squares stage first: it converges in ~10-20 evaluations and lands next to the
            # Huber optimum, from where the (L1-like, slowly converging) Huber fit needs few more.
            # About 6x fewer evaluations than the Huber fit from the grid point, same optimum.
            x0 = _local_fit(model, x0, lb, ub, None).x
        res = _local_fit(model, x0, lb, ub, delta)
        results.append((float(res.cost), res.x, res.status))
    costs = np.array([c for c, _, _ in results])
    best = int(np.argmin(costs))
    best_cost = costs[best]
    # Starts "agree" when they reach the best objective up to a relative 1e-6 (plus a tiny absolute
    # slack for exact fits whose objective is ~0).
    agree = costs <= best_cost * (1 + 1e-6) + 1e-14 * model.y.size
    thetas = np.array([x for _, x, _ in results])
    spread = np.abs(thetas[agree] - thetas[best]).max(axis=0)
    if results[best][2] == 0:
        warnings.warn("the best local fit hit its evaluation limit before converging",
                      FitWarning, stacklevel=4)
    return _Optimum(results[best][1], float(best_cost), len(starts), int(agree.sum()), spread)


def _identifiability(model: _LogSumModel, theta: np.ndarray, free: np.ndarray) -> float:
    """Ratio of smallest to largest singular value of the column-normalised Jacobian (free params)."""
    J = model.jacobian(theta)[:, free]
    if J.shape[1] == 0:
        return 1.0
    norms = np.linalg.norm(J, axis=0)
    if np.any(norms == 0):
        return 0.0
    s = np.linalg.svd(J / norms, compute_uv=False)
    return float(s[-1] / s[0])


def _bootstrap_counts(rng: np.random.Generator, n: int, groups: np.ndarray | None,
                      n_bootstrap: int) -> np.ndarray:
    """Resampling counts per row ``[n_bootstrap, n]``: rows, or whole groups, drawn with replacement."""
    if groups is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap)
    n_groups = int(groups.max()) + 1
    gcounts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_bootstrap)
    return gcounts[:, groups]


def _residual_draws(rng: np.random.Generator, resid: np.ndarray, groups: np.ndarray | None,
                    order: np.ndarray, n_bootstrap: int) -> np.ndarray:
    """Resampled residuals ``[n_bootstrap, n]`` for the residual bootstrap (design fixed).

    Each group (run) is a block: its residuals, sorted by ``order`` (the data size along a learning
    curve), form one residual curve. Runs with the same number of points form a pool; every run
    receives the whole residual curve of a run drawn with replacement from its pool, position by
    position, so the correlation along a curve is kept. A run alone in its pool (no other run has
    as many points) gets a circular moving-block resample of its own curve (blocks of
    ``ceil(m ** (1/3))`` points). Without ``groups`` every row is its own one-point run: the plain
    residual bootstrap.
    """
    n = resid.size
    codes = np.arange(n) if groups is None else groups
    curves = [np.flatnonzero(codes == g) for g in np.unique(codes)]
    curves = [rows[np.argsort(order[rows], kind="stable")] for rows in curves]
    out = np.empty((n_bootstrap, n))
    for m in sorted({len(c) for c in curves}):
        rows = np.stack([c for c in curves if len(c) == m])  # [k, m] rows of the pool's runs
        if len(rows) > 1:
            picks = rng.integers(len(rows), size=(n_bootstrap, len(rows)))
            out[:, rows] = resid[rows][picks]
        else:
            out[:, rows[0]] = resid[rows[0]][_moving_blocks(rng, m, n_bootstrap)]
    return out


def _modified_residuals(jac: np.ndarray, resid: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Residuals with the fit's shrinkage undone, per run: ``(I - H_gg)^(-1/2) r_g`` ``[n]``.

    A fit absorbs part of the noise, most of it in the runs with the most say on the parameters (with
    four widths, each run pins the amplitude and exponent of ``N``), so raw residuals are too small to
    stand for the noise. ``H = J (J^T J)^-1 J^T`` is the hat matrix of the fit linearised at its optimum
    (``jac [n, P]``, free parameters only); ``H_gg`` its block for the rows of run ``g``. This is the
    block form of the modified residuals ``r_i / sqrt(1 - h_ii)`` of Davison & Hinkley (1997, eq. 6.9),
    as in the bias-reduced cluster residuals of Bell & McCaffrey (2002). Eigenvalues of ``I - H_gg``
    are floored at 0.05 (at most a 4.5x inflation) so that a run that alone fixes a parameter does not
    blow up.
    """
    n = resid.size
    if jac.shape[1] == 0:
        return resid
    q, _ = np.linalg.qr(jac / np.linalg.norm(jac, axis=0))
    codes = np.arange(n) if groups is None else groups
    out = np.empty(n)
    for g in np.unique(codes):
        rows = np.flatnonzero(codes == g)
        lam, vec = np.linalg.eigh(np.eye(rows.size) - q[rows] @ q[rows].T)
        out[rows] = vec @ ((vec.T @ resid[rows]) / np.sqrt(np.maximum(lam, 0.05)))
    return out


def _moving_blocks(rng: np.random.Generator, m: int, n_bootstrap: int) -> np.ndarray:
    """Indices ``[n_bootstrap, m]`` of a circular moving-block resample of a series of length ``m``."""
    block = max(1, math.ceil(m ** (1 / 3)))
    n_blocks = math.ceil(m / block)
    starts = rng.integers(m, size=(n_bootstrap, n_blocks, 1))
    return ((starts + np.arange(block)) % m).reshape(n_bootstrap, -1)[:, :m]


def _bootstrap_models(model: _LogSumModel, theta_hat: np.ndarray, free: np.ndarray, rng: np.random.Generator,
                      groups: np.ndarray | None, n_bootstrap: int, kind: str) -> Iterator[_LogSumModel]:
    """The resampled data sets of the bootstrap, as models to refit.

    ``"cases"``: rows (or whole groups) drawn with replacement. ``"residual"``: the design (every
    ``N``, ``D``) kept, responses ``y* = log m(theta_hat) + r*`` in the fit's log space, with ``r*``
    drawn by :func:`_residual_draws` from the :func:`_modified_residuals` (``free``: the parameters
    not on a bound, whose Jacobian columns define the fit's hat matrix).
    """
    if kind == "cases":
        base = np.arange(model.y.size)
        for c in _bootstrap_counts(rng, model.y.size, groups, n_bootstrap):
            yield model.subset(np.repeat(base, c))
        return
    resid = model.residuals(theta_hat)
    fitted = model.y - resid
    jac = model.jacobian(theta_hat)[:, free]
    modified = _modified_residuals(jac, resid, groups)
    for r in _residual_draws(rng, modified, groups, model.logx[:, -1], n_bootstrap):
        yield model.with_y(fitted + r)


def _percentile_ci(samples: Mapping[str, np.ndarray], confidence: float) -> dict[str, tuple[float, float]]:
    q = [(1 - confidence) / 2, (1 + confidence) / 2]
    out = {}
    for k, v in samples.items():
        lo, hi = np.quantile(v, q)
        out[k] = (float(lo), float(hi))
    return out


def _bootstrap_nonlinear(models: Iterable[_LogSumModel], theta_hat: np.ndarray, lb: np.ndarray,
                         ub: np.ndarray, delta: float | None) -> np.ndarray:
    """Warm-started refits (from ``theta_hat``) on each resample; ``[n_ok, P]`` (failed refits dropped)."""
    out = []
    n_failed = n_total = 0
    n_params = len(theta_hat)
    for sub in models:
        n_total += 1
        try:
            res = _local_fit(sub, theta_hat, lb, ub, delta)
        except (ValueError, np.linalg.LinAlgError):
            n_failed += 1
            continue
        if res.status <= 0 or not np.all(np.isfinite(res.x)):
            n_failed += 1
            continue
        out.append(res.x)
    if n_failed:
        warnings.warn(f"{n_failed} of {n_total} bootstrap refits failed and were dropped",
                      FitWarning, stacklevel=4)
    return np.array(out).reshape(-1, n_params)


def _scheme(bootstrap: str, groups: np.ndarray | None, n_bootstrap: int) -> str:
    """The ``bootstrap`` attribute of a result: what was resampled."""
    if not n_bootstrap:
        return ""
    if bootstrap == "residual":
        return "residuals, design fixed" if groups is None else "residual blocks per run, design fixed"
    return "rows" if groups is None else "runs"


def _check_bootstrap(bootstrap: object) -> str:
    if not isinstance(bootstrap, str) or bootstrap not in _BOOTSTRAP_KINDS:
        raise ValueError(f"bootstrap must be one of {', '.join(map(repr, _BOOTSTRAP_KINDS))} ('cases': "
                         f"resample rows or whole groups; 'residual': keep the design, resample "
                         f"residual curves), got {bootstrap!r}")
    return bootstrap


def _check_delta(huber_delta: object) -> float | None:
    if huber_delta is None:
        return None
    return check_real("huber_delta", huber_delta, low=0.0, high=math.inf)


def _check_exponent_bounds(bounds: object) -> tuple[float, float]:
    try:
        lo, hi = (float(b) for b in bounds)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise TypeError(f"exponent_bounds must be a pair (low, high), got {bounds!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 0.0 <= lo < hi):
        raise ValueError(f"exponent_bounds must satisfy 0 <= low < high (finite), got {bounds!r}")
    return lo, hi


def _fits_L_inf(L_inf: object) -> bool:
    return isinstance(L_inf, str) and L_inf == "fit"


def _check_n_points(n: int, n_params: int) -> None:
    """Enough points for ``n_params`` parameters and an error estimate (checked before anything else,
    so that empty input gets this message, not numpy's "zero-size array")."""
    if n < n_params + 1:
        raise ValueError(f"need at least {n_params + 1} points to fit {n_params} parameters "
                         f"(with an error estimate), got {n}")


def _check_L_inf(L_inf: object, min_loss: float) -> float | None:
    """``"fit"`` -> None; a number -> the fixed value (0 <= L_inf < min loss)."""
    if isinstance(L_inf, str):
        if L_inf != "fit":
            raise ValueError(f"L_inf must be 'fit' or a number >= 0, got {L_inf!r}")
        return None
    v = check_real("L_inf", L_inf, low=0.0, high=math.inf, low_open=False)
    if v >= min_loss:
        raise ValueError(f"L_inf={v!r} must be below the smallest loss ({min_loss!r})")
    return v


def _rng(seed: object) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_int("seed", seed, minimum=0))


def _warn_bounds(names: list[str], theta: np.ndarray, lb: np.ndarray, ub: np.ndarray) -> None:
    for i, name in enumerate(names):
        if name == "L_inf":
            continue  # handled by the caller (snapped to 0 with its own message)
        width = 1e-6 * max(1.0, abs(ub[i] - lb[i]) if np.isfinite(ub[i] - lb[i]) else 1.0)
        if theta[i] <= lb[i] + width or theta[i] >= ub[i] - width:
            side = "lower" if theta[i] <= lb[i] + width else "upper"
            bound = lb[i] if side == "lower" else ub[i]
            warnings.warn(f"{name} = {theta[i]:.6g} sits on its {side} bound {bound:g}; the optimum "
                          "may lie outside the allowed range (see exponent_bounds)",
                          FitWarning, stacklevel=4)


def _free(theta: np.ndarray, lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    """Mask ``[P]`` of the parameters strictly inside their bounds."""
    return (theta > lb + 1e-9) & (theta < ub - 1e-9)


def _warn_fit_quality(opt: _Optimum, model: _LogSumModel, names: list[str], lb: np.ndarray,
                      ub: np.ndarray, min_agree: int) -> None:
    if opt.n_starts >= 2 and opt.n_agree < min(min_agree, opt.n_starts):
        warnings.warn(f"only {opt.n_agree} of {opt.n_starts} starts reached the best objective; the "
                      "optimum may not be global (try more n_starts)", FitWarning, stacklevel=4)
    free = _free(opt.theta, lb, ub)
    ratio = _identifiability(model, opt.theta, free)
    loose = [names[i] for i in range(len(names)) if free[i] and opt.spread[i] > 1e-3 * max(
        1.0, abs(opt.theta[i]))]
    if ratio < 1e-7 or loose:
        detail = (f"agreeing starts differ in {', '.join(loose)}" if loose
                  else f"Jacobian condition 1/{1 / max(ratio, 1e-300):.3g}")
        warnings.warn(f"the parameters are not identifiable from these data ({detail}); the values "
                      "and intervals are not meaningful individually", FitWarning, stacklevel=4)


# ----------------------------------------------------------------------------------------------
# Public fitters


@_keeps_warnings
def fit_power_law(
    x: ArrayLike,
    loss: ArrayLike,
    *,
    L_inf: float | str = 0.0,
    huber_delta: float | None = None,
    n_bootstrap: int = 1000,
    groups: ArrayLike | None = None,
    bootstrap: str = "cases",
    seed: int | np.random.Generator = 0,
    confidence: float = 0.95,
    exponent_bounds: tuple[float, float] = (0.0, 5.0),
) -> PowerLawFit:
    """Fit ``L(x) = L_inf + F x^(-gamma)`` (paper eq. 4) with bootstrap confidence intervals.

    Meant for the points of a loss-compute Pareto frontier (:func:`pareto_frontier`), with ``x`` the
    compute in FLOPs ``C`` (better: PFLOPs, ``C / 1e15``, as in table 1) or hours ``H``.

    The objective is ``sum_i rho(log L_i - log(L_inf + F x_i^-gamma))``. With ``L_inf = 0`` and
    ``huber_delta=None`` this is ordinary least squares of ``log L`` on ``log x``, solved in closed form
    (and the bootstrap is vectorised); otherwise it is minimised by ``scipy.optimize.least_squares``
    from a grid of starts (see the module docstring).

    Args:
        x: positive scale variable, ``[n]``.
        loss: positive losses, ``[n]``.
        L_inf: ``"fit"`` to fit the irreducible loss (``>= 0``), or a fixed value below ``min(loss)``;
            the paper uses ``0`` (section 4.1).
        huber_delta: Huber threshold on log residuals, or ``None`` for least squares.
        n_bootstrap: bootstrap resamples for ``ci`` (0: no intervals).
        groups: optional label per point (e.g. run id); the bootstrap then resamples whole groups
            (``bootstrap="cases"``) or whole residual curves per group (``"residual"``).
        bootstrap: ``"cases"`` (default: resample points, or whole groups) or ``"residual"``
            (design fixed: ``x`` kept, log residuals resampled; see the module docstring).
        seed: seed or ``numpy.random.Generator`` of the bootstrap.
        confidence: level of the percentile intervals.
        exponent_bounds: allowed range of ``gamma``.

    Returns:
        :class:`PowerLawFit`.

    Raises:
        TypeError / ValueError: non-numeric, non-finite or non-positive inputs, mismatched lengths,
            fewer than ``n_params + 1`` points, or a single distinct ``x``.

    Shapes:
        x, loss, groups: ``[n]``.
    """
    x = as_positive_1d("x", x)
    loss = as_positive_1d("loss", loss)
    n = same_length(x=x, loss=loss)
    _check_n_points(n, 3 if _fits_L_inf(L_inf) else 2)
    E = _check_L_inf(L_inf, float(loss.min()))
    delta = _check_delta(huber_delta)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, minimum=0)
    bootstrap = _check_bootstrap(bootstrap)
    confidence = check_real("confidence", confidence, low=0.0, high=1.0)
    ebounds = _check_exponent_bounds(exponent_bounds)
    codes = None if groups is None else as_groups("groups", groups, n)
    if np.unique(x).size < 2:
        raise ValueError("x has a single distinct value: the exponent gamma is not identifiable")
    rng = _rng(seed)

    logx = np.log(x)[:, None]
    y = np.log(loss)
    fixed = () if E is None else ("L_inf",)

    if E == 0.0 and delta is None:
        # Closed-form OLS: y = a - gamma * log x.
        theta, cost = _ols(logx[:, 0], y, np.ones(n)[None, :])
        a, gamma = float(theta[0, 0]), float(theta[0, 1])
        if not (ebounds[0] <= gamma <= ebounds[1]):
            warnings.warn(f"gamma = {gamma:.6g} lies outside exponent_bounds {ebounds}; least squares "
                          "on log-log data does not apply bounds", FitWarning, stacklevel=3)
        samples: dict[str, np.ndarray] = {}
        if n_bootstrap:
            th = _bootstrap_ols(rng, logx[:, 0], y, theta[0], codes, n_bootstrap, bootstrap)
            ok = np.all(np.isfinite(th), axis=1)
            if not ok.all():
                warnings.warn(f"{int((~ok).sum())} of {n_bootstrap} bootstrap resamples had a single "
                              "distinct x and were dropped", FitWarning, stacklevel=3)
            th = th[ok]
            samples = {"F": np.exp(th[:, 0]), "gamma": th[:, 1], "L_inf": np.zeros(len(th))}
        return PowerLawFit(
            F=math.exp(a), gamma=gamma, L_inf=0.0,
            ci=_percentile_ci(samples, confidence) if samples else {},
            samples=samples, n_points=n, fixed=fixed, objective=float(cost[0]),
            confidence=confidence, bootstrap=_scheme(bootstrap, codes, n_bootstrap),
        )

    model = _LogSumModel(logx, y, E=E, scale=float(np.median(loss)))
    lb, ub = _bounds(model, ebounds)
    grid = _grid(model, float(loss.min()), ebounds)
    scores = _score(model, grid, delta)
    starts = grid[np.argsort(scores, kind="stable")[: min(8, len(grid))]]
    opt = _optimise(model, starts, lb, ub, delta)
    names = ["F", "gamma"] + (["L_inf"] if model.fit_E else [])
    theta = _snap_L_inf(opt.theta, model, float(loss.min()), stacklevel=3)
    _warn_bounds(names, theta, lb, ub)
    _warn_fit_quality(opt, model, names, lb, ub, min_agree=2)

    samples = {}
    if n_bootstrap:
        free = _free(theta, lb, ub)
        th = _bootstrap_nonlinear(_bootstrap_models(model, theta, free, rng, codes, n_bootstrap, bootstrap),
                                  theta, lb, ub, delta)
        samples = {"F": np.exp(th[:, 0]), "gamma": th[:, 1],
                   "L_inf": _snap_samples(th[:, 2] * model.scale, float(loss.min())) if model.fit_E
                   else np.full(len(th), model.E)}
    return PowerLawFit(
        F=math.exp(theta[0]), gamma=float(theta[1]), L_inf=float(model._E(theta)),
        ci=_percentile_ci(samples, confidence) if samples else {},
        samples=samples, n_points=n, fixed=fixed, objective=opt.cost, confidence=confidence,
        bootstrap=_scheme(bootstrap, codes, n_bootstrap),
    )


def _ols(lx: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted OLS of ``y = a - gamma lx`` for each weight row ``w [B, n]`` -> ``([B, 2], cost [B])``.

    ``y`` is ``[n]`` (shared) or ``[B, n]`` (one response vector per row of ``w``)."""
    sw = w.sum(axis=1)
    yb = np.broadcast_to(y, w.shape)
    mx = w @ lx / sw
    my = np.einsum("bn,bn->b", w, yb) / sw
    dx = lx[None, :] - mx[:, None]
    dy = yb - my[:, None]
    sxx = np.einsum("bn,bn->b", w, dx * dx)
    sxy = np.einsum("bn,bn->b", w, dx * dy)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(sxx > 1e-12 * sw * (1 + np.abs(mx)) ** 2, sxy / sxx, np.nan)
    a = my - slope * mx
    r = dy - slope[:, None] * dx
    cost = 0.5 * np.einsum("bn,bn->b", w, r * r)
    return np.stack([a, -slope], axis=1), cost


def _bootstrap_ols(rng: np.random.Generator, lx: np.ndarray, y: np.ndarray, theta: np.ndarray,
                   groups: np.ndarray | None, n_bootstrap: int, kind: str) -> np.ndarray:
    """Closed-form bootstrap refits ``[n_bootstrap, 2]`` of ``y = a - gamma lx`` (``theta = [a, gamma]``)."""
    if kind == "cases":
        return _ols(lx, y, _bootstrap_counts(rng, lx.size, groups, n_bootstrap))[0]
    fitted = theta[0] - theta[1] * lx
    modified = _modified_residuals(np.stack([np.ones_like(lx), lx], axis=1), y - fitted, groups)
    ystar = fitted + _residual_draws(rng, modified, groups, lx, n_bootstrap)
    return _ols(lx, ystar, np.ones_like(ystar))[0]


def _snap_L_inf(theta: np.ndarray, model: _LogSumModel, min_loss: float, *, stacklevel: int) -> np.ndarray:
    """Report a fitted ``L_inf`` at its lower bound as exactly 0, with a warning."""
    if not model.fit_E:
        return theta
    theta = theta.copy()
    if theta[-1] * model.scale < _LINF_ZERO * min_loss:
        theta[-1] = 0.0
        warnings.warn("L_inf sits on its lower bound 0 (the data show no irreducible loss); it is "
                      "reported as 0. Pass L_inf=0.0 to fix it, as the paper does.",
                      FitWarning, stacklevel=stacklevel + 1)
    return theta


def _snap_samples(L_inf: np.ndarray, min_loss: float) -> np.ndarray:
    """Bootstrap values of ``L_inf`` at the lower bound are 0, as for the full fit."""
    return np.where(L_inf < _LINF_ZERO * min_loss, 0.0, L_inf)


@_keeps_warnings
def fit_sum_power_law(
    N: ArrayLike,
    D: ArrayLike,
    loss: ArrayLike,
    *,
    L_inf: float | str = "fit",
    huber_delta: float | None = 1e-3,
    n_bootstrap: int = 1000,
    groups: ArrayLike | None = None,
    bootstrap: str = "cases",
    seed: int | np.random.Generator = 0,
    n_starts: int = 16,
    init: Mapping[str, float] | None = None,
    confidence: float = 0.95,
    exponent_bounds: tuple[float, float] = (0.0, 5.0),
) -> SumPowerLawFit:
    """Fit ``L(N, D) = L_inf + A N^-alpha + B D^-beta`` (paper eq. 5; Hoffmann et al. approach 3).

    Minimises the Huber loss (``huber_delta``, 1e-3 as Hoffmann et al.) of the log residuals
    ``log L_i - LSE(log A - alpha log N_i, log B - beta log D_i, log L_inf)`` with
    ``scipy.optimize.least_squares`` at tight tolerances, from the ``n_starts`` best points of a
    vectorised grid search (or from ``init`` alone), and bootstraps the fit (warm-started) for the
    intervals. See the module docstring for the method and the warnings it can emit.

    Args:
        N: model sizes (trainable parameters), ``[n]``; at least two distinct values.
        D: data sizes (tokens / atoms seen), ``[n]``; at least two distinct values.
        loss: validation losses, ``[n]``.
        L_inf: ``"fit"`` (default; constrained ``>= 0``) or a fixed value below ``min(loss)``; the
            paper finds ``L_inf ~ 0`` for every architecture.
        huber_delta: Huber threshold on log residuals; ``None`` for plain least squares.
        n_bootstrap: bootstrap resamples (0: no intervals).
        groups: optional label per row (e.g. run id): resample whole runs instead of rows, which
            respects the correlation of points along one learning curve.
        bootstrap: ``"cases"`` (default: resample rows, or whole runs with ``groups``) or
            ``"residual"`` (design fixed: every ``(N, D)`` kept, the per-run curves of log
            residuals resampled; the right choice for a designed study whose widths are set by the
            experimenter, see the module docstring).
        seed: seed or ``numpy.random.Generator`` of the bootstrap.
        n_starts: number of best grid points refined by the local optimiser.
        init: optional starting point ``{"A", "B", "alpha", "beta"[, "L_inf"]}``; replaces the grid.
        confidence: level of the percentile intervals.
        exponent_bounds: allowed range of ``alpha`` and ``beta``.

    Returns:
        :class:`SumPowerLawFit`.

    Raises:
        TypeError / ValueError: bad values (named, with the first bad index), mismatched lengths,
            fewer than ``n_params + 1`` points, a single distinct ``N`` or ``D`` (use
            :func:`fit_power_law` on the other variable instead).

    Shapes:
        N, D, loss, groups: ``[n]``.
    """
    N = as_positive_1d("N", N)
    D = as_positive_1d("D", D)
    loss = as_positive_1d("loss", loss)
    n = same_length(N=N, D=D, loss=loss)
    _check_n_points(n, 5 if _fits_L_inf(L_inf) else 4)
    E = _check_L_inf(L_inf, float(loss.min()))
    delta = _check_delta(huber_delta)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, minimum=0)
    bootstrap = _check_bootstrap(bootstrap)
    n_starts = check_int("n_starts", n_starts, minimum=1)
    confidence = check_real("confidence", confidence, low=0.0, high=1.0)
    ebounds = _check_exponent_bounds(exponent_bounds)
    codes = None if groups is None else as_groups("groups", groups, n)
    for name, v, other in (("N", N, "D"), ("D", D, "N")):
        if np.unique(v).size < 2:
            raise ValueError(
                f"{name} has a single distinct value ({v[0]:g}): the sum law cannot separate its "
                f"amplitude and exponent from L_inf; fit a power law in {other} instead "
                f"(fit_power_law({other}, loss, L_inf='fit'))")
    rng = _rng(seed)

    model = _LogSumModel(np.stack([np.log(N), np.log(D)], axis=1), np.log(loss), E=E,
                         scale=float(np.median(loss)))
    lb, ub = _bounds(model, ebounds)
    names = ["A", "B", "alpha", "beta"] + (["L_inf"] if model.fit_E else [])
    if init is not None:
        starts = _init_theta(init, model)[None, :]
    else:
        grid = _grid(model, float(loss.min()), ebounds)
        scores = _score(model, grid, delta)
        starts = grid[np.argsort(scores, kind="stable")[: min(n_starts, len(grid))]]
    opt = _optimise(model, starts, lb, ub, delta)
    theta = _snap_L_inf(opt.theta, model, float(loss.min()), stacklevel=3)
    _warn_bounds(names, theta, lb, ub)
    _warn_fit_quality(opt, model, names, lb, ub, min_agree=max(2, n_starts // 8))

    samples: dict[str, np.ndarray] = {}
    if n_bootstrap:
        free = _free(theta, lb, ub)
        th = _bootstrap_nonlinear(_bootstrap_models(model, theta, free, rng, codes, n_bootstrap, bootstrap),
                                  theta, lb, ub, delta)
        samples = {
            "L_inf": _snap_samples(th[:, 4] * model.scale, float(loss.min())) if model.fit_E
            else np.full(len(th), model.E),
            "A": np.exp(th[:, 0]), "B": np.exp(th[:, 1]), "alpha": th[:, 2], "beta": th[:, 3],
        }
    return SumPowerLawFit(
        L_inf=float(model._E(theta)), A=math.exp(theta[0]), B=math.exp(theta[1]),
        alpha=float(theta[2]), beta=float(theta[3]),
        ci=_percentile_ci(samples, confidence) if samples else {},
        samples=samples, n_points=n, fixed=() if model.fit_E else ("L_inf",),
        objective=opt.cost, n_starts=opt.n_starts, n_agree=opt.n_agree, confidence=confidence,
        bootstrap=_scheme(bootstrap, codes, n_bootstrap),
    )


def _init_theta(init: Mapping[str, float], model: _LogSumModel) -> np.ndarray:
    if not isinstance(init, Mapping):
        raise TypeError(f"init must be a mapping of symbols to values, got {type(init).__name__}")
    need = {"A", "B", "alpha", "beta"} | ({"L_inf"} if model.fit_E else set())
    allowed = need | {"L_inf"}
    missing = need - set(init)
    extra = set(init) - allowed
    if missing or extra:
        raise ValueError(f"init must give {sorted(need)}; missing {sorted(missing)}, "
                         f"unknown {sorted(extra)}")
    A = check_real("init['A']", init["A"], low=0.0, high=math.inf)
    B = check_real("init['B']", init["B"], low=0.0, high=math.inf)
    theta = [math.log(A), math.log(B), float(init["alpha"]), float(init["beta"])]
    if model.fit_E:
        theta.append(check_real("init['L_inf']", init["L_inf"], low=0.0, high=math.inf,
                                low_open=False) / model.scale)
    return np.array(theta, dtype=np.float64)
