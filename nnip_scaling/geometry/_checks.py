"""Argument validation shared by the geometry functions (no device synchronisation)."""

from __future__ import annotations

import numbers

import torch


def check_int(name: str, value, *, minimum: int) -> int:
    """Return ``value`` as ``int`` or raise TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_positive_float(name: str, value) -> float:
    """Return ``value`` as a finite ``float`` > 0 or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not (value > 0.0 and value < float("inf")):
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return value


def check_float_tensor(name: str, value) -> torch.Tensor:
    """Raise TypeError unless ``value`` is a floating-point tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {value.dtype}")
    return value


def check_last_dims(name: str, value: torch.Tensor, dims: tuple[int, ...]) -> None:
    """Raise ValueError unless the trailing dimensions of ``value`` equal ``dims``."""
    k = len(dims)
    if value.dim() < k or tuple(value.shape[-k:]) != dims:
        want = "[..., " + ", ".join(str(d) for d in dims) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(value.shape)}")
