"""Argument types shared by the ``nnip-scaling`` subcommands (standard library only: ``--help`` stays instant)."""

from __future__ import annotations

import argparse
import math

__all__ = ["positive_float", "positive_angstrom"]


def positive_float(text: str, *, unit: str = "") -> float:
    """``text`` as a positive finite float, or an ``argparse`` error that names the unit (if any)."""
    of = f" of {unit}" if unit else ""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number{of}, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number{of}, got {text!r}")
    return value


def positive_angstrom(text: str) -> float:
    """A positive finite length in Å (e.g. a cutoff)."""
    return positive_float(text, unit="Å")
