"""Small dense layers and normalisations shared by the directional blocks (GemNet-OC's ``Dense``,
``ScaledSiLU``, ``ResidualLayer``)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from nnip_scaling.nn.mlp import init_hidden_, init_readout_

__all__ = ["Dense", "ResidualLayer", "rms_normalise", "soft_normalise"]

_SILU_SCALE = 1.0 / 0.6  # GemNet's ScaledSiLU: keeps the second moment of N(0, 1) inputs near 1


class Dense(nn.Module):
    r"""Bias-free linear layer, optionally followed by the scaled SiLU :math:`\mathrm{silu}(x)/0.6`.

    μP hidden initialisation :math:`W \sim \mathcal N(0, 1/\text{fan\_in})`
    (:func:`nnip_scaling.nn.mlp.init_hidden_`), or the readout one with ``readout=True``.

    Shapes:
        ``[..., in_features] -> [..., out_features]``.
    """

    def __init__(self, in_features: int, out_features: int, *, activation: bool, readout: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        (init_readout_ if readout else init_hidden_)(self.linear)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        x = self.linear(x)
        return nn.functional.silu(x) * _SILU_SCALE if self.activation else x


def soft_normalise(x: Tensor) -> Tensor:
    r"""Soft RMS normalisation :math:`x / \sqrt{1 + \langle x^2\rangle}` over the last dimension.

    Never amplifies (gain :math:`\le 1`): small inputs pass almost unchanged (an edge fading out at the
    cutoff stays small), large ones are brought to RMS :math:`\le 1`. Smooth, parameter-free.

    Shapes:
        ``[..., C] -> [..., C]``.
    """
    return x * torch.rsqrt(1.0 + (x * x).mean(-1, keepdim=True))


def rms_normalise(x: Tensor, eps: float = 1e-6) -> Tensor:
    r"""RMS normalisation :math:`x / \sqrt{\langle x^2\rangle + \epsilon}` over the last dimension
    (no learned gain). Used on the atom and edge states at the end of each block.

    Shapes:
        ``[..., C] -> [..., C]``.
    """
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps)


class ResidualLayer(nn.Module):
    r""":math:`x \mapsto \big(x + \mathrm{Dense}(\mathrm{Dense}(\mathrm{soft}(x)))\big)/\sqrt 2`, two
    activated dense layers on the :func:`soft_normalise`-d input (pre-normalised residual branch;
    keeps stacks of residual layers from amplifying, the job of GemNet-OC's fitted scale factors).

    Shapes:
        ``[..., width] -> [..., width]``.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.dense1 = Dense(width, width, activation=True)
        self.dense2 = Dense(width, width, activation=True)

    def forward(self, x: Tensor) -> Tensor:
        return (x + self.dense2(self.dense1(soft_normalise(x)))) * (1.0 / math.sqrt(2.0))


def residual_stack(width: int, n: int) -> nn.Sequential:
    """``n`` :class:`ResidualLayer` s of size ``width`` in sequence."""
    return nn.Sequential(*(ResidualLayer(width) for _ in range(n)))


def check_dim(name: str, value: Any) -> int:
    """``value`` if it is a positive int (not a bool), else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value
