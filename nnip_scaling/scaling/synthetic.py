"""Synthetic run logs drawn from a known sum power law (for tests, examples and benchmarks).

Every learning curve follows eq. (5), ``L = L_inf + A N^-alpha + B D^-beta``, at data sizes
``D = r * D_max`` for the given fractions ``r`` (the paper evaluates ``r = 0.1, 0.2, ..., 1.0``), with
``C = 3 kappa N D`` (eq. 3). Noise is multiplicative (Gaussian in ``log L``): ``noise`` is independent
per point, ``run_noise`` is one offset shared by all points of a run (as real curves are correlated).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from nnip_scaling.scaling._validate import as_positive_1d, check_real
from nnip_scaling.scaling.laws import sum_power_law
from nnip_scaling.scaling.runs import RunLog

__all__ = ["synthetic_runs"]

# The paper evaluates each model at r = 0.1, 0.2, ..., 1.0 of the data (section 4.2).
_PAPER_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def synthetic_runs(
    n_params: ArrayLike,
    *,
    D_max: float,
    fractions: ArrayLike = _PAPER_FRACTIONS,
    L_inf: float = 0.0,
    A: float,
    B: float,
    alpha: float,
    beta: float,
    kappa: float = 2.0,
    noise: float = 0.0,
    run_noise: float = 0.0,
    flops_per_hour: float | None = None,
    arch: str | None = None,
    seed: int | np.random.Generator = 0,
) -> RunLog:
    """Run log with one run per model size and one row per data fraction.

    Args:
        n_params: model sizes ``[n_runs]``.
        D_max: tokens seen at the end of each run.
        fractions: ``[n_evals]`` evaluation points as fractions of ``D_max`` (in ``(0, 1]``).
        L_inf, A, B, alpha, beta: the true sum law (eq. 5).
        kappa: forward FLOPs per parameter per atom; ``flops = 3 kappa N D``.
        noise: standard deviation of independent noise on ``log L``.
        run_noise: standard deviation of a per-run offset of ``log L``.
        flops_per_hour: if given, adds ``hours = flops / flops_per_hour``.
        arch: if given, adds a free ``arch`` column with this value.
        seed: seed or ``numpy.random.Generator``.

    Returns:
        :class:`RunLog` with ``n_runs * n_evals`` rows and a ``step`` column (1-based evaluation index).
    """
    Ns = as_positive_1d("n_params", n_params)
    r = as_positive_1d("fractions", fractions)
    if np.any(r > 1):
        raise ValueError("fractions must lie in (0, 1]")
    D_max = check_real("D_max", D_max, low=0.0, high=np.inf)
    kappa = check_real("kappa", kappa, low=0.0, high=np.inf)
    noise = check_real("noise", noise, low=0.0, high=np.inf, low_open=False)
    run_noise = check_real("run_noise", run_noise, low=0.0, high=np.inf, low_open=False)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    r = np.sort(r)
    N = np.repeat(Ns, len(r))
    D = np.tile(r * D_max, len(Ns))
    log_noise = rng.normal(0.0, noise, N.size) if noise > 0 else np.zeros(N.size)
    if run_noise > 0:
        log_noise += np.repeat(rng.normal(0.0, run_noise, len(Ns)), len(r))
    loss = sum_power_law(N, D, L_inf, A, B, alpha, beta) * np.exp(log_noise)
    flops = 3.0 * kappa * N * D
    extra: dict[str, np.ndarray] = {"step": np.tile(np.arange(1, len(r) + 1, dtype=np.float64), len(Ns))}
    if arch is not None:
        extra["arch"] = np.full(N.size, str(arch))
    prefix = f"{arch}-" if arch is not None else ""
    run_id = np.repeat(np.array([f"{prefix}run{i}_N{n:.3g}" for i, n in enumerate(Ns)]), len(r))
    return RunLog(
        run_id=run_id, n_params=N, tokens=D, flops=flops, loss=loss,
        hours=None if flops_per_hour is None else flops / check_real(
            "flops_per_hour", flops_per_hour, low=0.0, high=np.inf),
        extra=extra,
    )
