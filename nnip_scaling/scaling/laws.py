"""Scaling laws as pure functions (paper eq. 4 and eq. 5).

Every function here is a pure numpy function of its arguments: no state, no fitting. The fitters in
:mod:`nnip_scaling.scaling.fit` work with the logarithm of these laws, written as a log-sum-exp so that
losses at any scale (1e-3 or 1e3) give residuals of the same size:

.. math::

    \\log L(N, D) = \\operatorname{LSE}(a - \\alpha \\log N,\\; b - \\beta \\log D,\\; \\log L_\\infty),
    \\qquad a = \\log A,\\; b = \\log B

(Hoffmann et al. 2022, approach 3).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["power_law", "sum_power_law", "log_power_law", "log_sum_power_law"]


def power_law(x: ArrayLike, F: float, gamma: float, L_inf: float = 0.0) -> np.ndarray:
    """Power law in one variable, paper eq. (4): ``L(x) = L_inf + F * x**(-gamma)``.

    ``x`` is a compute budget (FLOPs ``C`` or hours ``H``), or any other positive scale variable.

    Shapes:
        x: any shape ``[...]``; returns the same shape (float64).
    """
    x = np.asarray(x, dtype=np.float64)
    return L_inf + F * np.power(x, -gamma)


def sum_power_law(
    N: ArrayLike, D: ArrayLike, L_inf: float, A: float, B: float, alpha: float, beta: float
) -> np.ndarray:
    """Separable sum power law in model and data size, paper eq. (5).

    .. math:: L(N, D) = L_\\infty + A N^{-\\alpha} + B D^{-\\beta}

    ``N`` is the number of trainable parameters, ``D`` the number of training tokens (atoms seen).

    Shapes:
        N, D: broadcastable shapes; returns their broadcast shape (float64).
    """
    N = np.asarray(N, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    return L_inf + A * np.power(N, -alpha) + B * np.power(D, -beta)


def log_power_law(x: ArrayLike, F: float, gamma: float, L_inf: float = 0.0) -> np.ndarray:
    """``log`` of :func:`power_law`, computed as ``logaddexp(log F - gamma log x, log L_inf)``.

    Stable for any scale of ``F`` and ``x`` (no overflow of ``x**(-gamma)`` for ``x`` ~ 1e20).

    Shapes:
        x: any shape ``[...]``; returns the same shape.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.logaddexp(np.log(F) - gamma * np.log(x), np.log(L_inf))


def log_sum_power_law(
    N: ArrayLike, D: ArrayLike, L_inf: float, A: float, B: float, alpha: float, beta: float
) -> np.ndarray:
    """``log`` of :func:`sum_power_law` as ``LSE(log A - alpha log N, log B - beta log D, log L_inf)``.

    Shapes:
        N, D: broadcastable shapes; returns their broadcast shape.
    """
    N = np.asarray(N, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    with np.errstate(divide="ignore"):
        t = np.logaddexp(np.log(A) - alpha * np.log(N), np.log(B) - beta * np.log(D))
        return np.logaddexp(t, np.log(L_inf))
