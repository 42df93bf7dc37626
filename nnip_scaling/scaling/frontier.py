"""Loss-compute Pareto frontier (Hoffmann et al. 2022, approach 1; paper section 4.1, fig. 3).

"For each compute budget, we select the minimum validation loss achieved across runs": the frontier
is the lower envelope of all evaluation points of all learning curves in the (compute, loss) plane.
Before taking it the paper drops the first 1-10% of each run's steps (section 3.2) and smooths the
noisy GemNet-OC curves with an exponential moving average of factor 0.9 (footnote 5); both are
options here, applied per run.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from nnip_scaling.scaling._validate import as_groups, as_positive_1d, check_real, same_length
from nnip_scaling.scaling.runs import RunLog

__all__ = ["pareto_frontier", "smooth_ema", "warmup_mask", "prepare_runs"]


def _per_run_order(n: int, run_id: ArrayLike | None, order: ArrayLike | None,
                   default_order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group codes ``[n]`` and a permutation sorting rows by (run, order)."""
    codes = np.zeros(n, dtype=np.int64) if run_id is None else as_groups("run_id", run_id, n)
    if order is None:
        key = default_order
    else:
        try:
            key = np.asarray(order, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError("order must be an array of numbers") from None
        if key.shape != (n,):
            raise ValueError(f"order must have shape ({n},), got {key.shape}")
        if not np.all(np.isfinite(key)):
            raise ValueError("order must be finite")
    return codes, np.lexsort((key, codes))


def smooth_ema(values: ArrayLike, factor: float, *, run_id: ArrayLike | None = None,
               order: ArrayLike | None = None) -> np.ndarray:
    """Exponential moving average along each run: ``s_t = factor * s_{t-1} + (1 - factor) * x_t``.

    ``s_0 = x_0`` at each run's first point (in ``order``; default: input order). ``factor=0`` returns
    the values unchanged; the paper uses 0.9 for GemNet-OC. Note that on a decreasing learning curve
    the average lags behind, i.e. overestimates the loss by roughly ``factor / (1 - factor)`` steps'
    worth of decrease.

    Args:
        values: ``[n]`` values (e.g. losses).
        factor: smoothing factor in ``[0, 1)``.
        run_id: ``[n]`` run labels; each run is smoothed separately (default: one run).
        order: ``[n]`` position along the run (step, tokens, ...); default: input order.

    Returns:
        ``[n]`` smoothed values, in the input order.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {x.shape}")
    factor = check_real("factor", factor, low=0.0, high=1.0, low_open=False)
    n = len(x)
    codes, perm = _per_run_order(n, run_id, order, np.arange(n, dtype=np.float64))
    out = np.empty(n)
    prev_code = None
    s = 0.0
    for i in perm:
        if codes[i] != prev_code:
            s = x[i]
            prev_code = codes[i]
        else:
            s = factor * s + (1.0 - factor) * x[i]
        out[i] = s
    return out


def warmup_mask(order: ArrayLike, fraction: float, *, run_id: ArrayLike | None = None) -> np.ndarray:
    """Mask keeping the points past the first ``fraction`` of each run.

    A point is dropped when ``order < fraction * max(order over its run)``; with ``order`` the step or
    the tokens seen, this drops the first ``fraction`` of training (paper: 1-10%).

    Shapes:
        order, run_id: ``[n]``; returns a boolean ``[n]`` (True = keep).
    """
    try:
        key = np.asarray(order, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("order must be an array of numbers") from None
    if key.ndim != 1 or not np.all(np.isfinite(key)):
        raise ValueError("order must be a 1-D array of finite numbers")
    fraction = check_real("fraction", fraction, low=0.0, high=1.0, low_open=False)
    n = len(key)
    codes = np.zeros(n, dtype=np.int64) if run_id is None else as_groups("run_id", run_id, n)
    run_max = np.full(int(codes.max()) + 1 if n else 0, -np.inf)
    np.maximum.at(run_max, codes, key)
    return key >= fraction * run_max[codes]


def pareto_frontier(
    compute: ArrayLike,
    loss: ArrayLike,
    *,
    run_id: ArrayLike | None = None,
    order: ArrayLike | None = None,
    drop_first: float = 0.0,
    ema: float | None = None,
) -> np.ndarray:
    """Indices of the lower envelope of (compute, loss): the loss-compute Pareto frontier.

    A point is on the frontier when every point with smaller or equal compute has a strictly larger
    loss (ties in compute keep the lowest loss once). Along the returned indices compute increases and
    loss strictly decreases.

    Args:
        compute: ``[n]`` positive compute (FLOPs or hours) of every evaluation point.
        loss: ``[n]`` positive validation losses.
        run_id: ``[n]`` run labels; required for ``drop_first`` and ``ema``, which work per run.
        order: ``[n]`` position along each run (step or tokens); default: ``compute``.
        drop_first: drop each run's points with ``order < drop_first * max(order)`` (paper: 0.01-0.1).
        ema: if given, select the frontier on losses smoothed by :func:`smooth_ema` with this factor
            (paper: 0.9 for GemNet-OC). The smoothed values are
            ``smooth_ema(loss, ema, run_id=run_id, order=order or compute)``; fit those, not the raw
            ``loss[idx]``.

    Returns:
        int64 indices into the inputs, sorted by increasing compute.

    Shapes:
        compute, loss, run_id, order: ``[n]``; returns ``[n_frontier]``.
    """
    c = as_positive_1d("compute", compute)
    y = as_positive_1d("loss", loss)
    n = same_length(compute=c, loss=y)
    drop_first = check_real("drop_first", drop_first, low=0.0, high=1.0, low_open=False)
    if (drop_first > 0 or ema is not None) and run_id is None:
        raise ValueError("run_id is required with drop_first or ema (they work along each run)")
    key = c if order is None else order
    if ema is not None:
        y = smooth_ema(y, ema, run_id=run_id, order=key)
    keep = np.ones(n, dtype=bool)
    if drop_first > 0:
        keep = warmup_mask(key, drop_first, run_id=run_id)
    idx = np.flatnonzero(keep)
    perm = idx[np.lexsort((y[idx], c[idx]))]
    ys = y[perm]
    prev_min = np.minimum.accumulate(np.concatenate([[np.inf], ys[:-1]]))
    return perm[ys < prev_min].astype(np.int64)


def prepare_runs(runs: RunLog, *, drop_first: float = 0.0, ema: float | None = None) -> RunLog:
    """Apply the paper's preprocessing to a run log: EMA smoothing per run, then drop warm-up points.

    Each run is ordered by its ``step`` column when there is a numeric one, else by ``tokens``. The
    returned log has the smoothed losses and only the kept rows; fit both laws to it.
    """
    if not isinstance(runs, RunLog):
        raise TypeError(f"runs must be a RunLog, got {type(runs).__name__}")
    step = runs.extra.get("step")
    order = step if step is not None and step.dtype.kind in "fiu" else runs.tokens
    out = runs
    if ema is not None:
        out = out.with_loss(smooth_ema(runs.loss, ema, run_id=runs.run_id, order=order))
    drop_first = check_real("drop_first", drop_first, low=0.0, high=1.0, low_open=False)
    if drop_first > 0:
        out = out.select(warmup_mask(order, drop_first, run_id=runs.run_id))
    return out
