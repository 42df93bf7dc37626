"""Input checks shared by the scaling subpackage (private)."""

from __future__ import annotations

import numbers

import numpy as np


def as_positive_1d(name: str, values: object, *, allow_zero: bool = False) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array of finite, positive numbers, or raise naming ``name``.

    Shapes:
        values: ``[n]`` (a scalar is rejected); returns ``[n]``.
    """
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a 1-D array of numbers, got a string")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a 1-D array of numbers ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite: {name}[{i}] = {float(arr[i])!r} "
                         f"({int(bad.sum())} bad values)")
    bad = arr < 0 if allow_zero else arr <= 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be {what}: {name}[{i}] = {float(arr[i])!r} "
                         f"({int(bad.sum())} bad values)")
    return arr


def same_length(**arrays: np.ndarray) -> int:
    """Check that every array has the same length; return it."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise ValueError(f"arrays must have the same length: {desc}")
    return next(iter(lengths.values()))


def check_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_real(name: str, value: object, *, low: float, high: float, low_open: bool = True,
               high_open: bool = True) -> float:
    """Check ``value`` is a real number in the interval (or [) low, high ( or ]); return it as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    ok_low = v > low if low_open else v >= low
    ok_high = v < high if high_open else v <= high
    if not (np.isfinite(v) and ok_low and ok_high):
        lb = "(" if low_open else "["
        hb = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lb}{low}, {high}{hb}, got {value!r}")
    return v


def as_groups(name: str, groups: object, n: int) -> np.ndarray:
    """Return integer group codes ``[n]`` (0..n_groups-1) for any 1-D array of hashable labels."""
    arr = np.asarray(groups)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{name} must be 1-D with one label per point ({n}), got shape {arr.shape}")
    _, codes = np.unique(arr, return_inverse=True)
    return codes.reshape(-1).astype(np.int64)
