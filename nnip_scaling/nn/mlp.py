r"""Multi-layer perceptrons with μP-style initialisation (shared by every block and head).

Initialisation (μP, Yang et al. 2021, "Tensor Programs V", table 3; see docs/architecture_models.md):

- *hidden* linear layers (fan-in grows with the width): :math:`W_{ij} \sim \mathcal N(0, 1/\text{fan\_in})`,
  bias 0, so every pre-activation has :math:`\Theta(1)` entries at every width;
- *readout* layers (the last layer of an output head, whose fan-in is the width and whose fan-out is
  fixed): :math:`W_{ij} \sim \mathcal N(0, 1/\text{fan\_in}^2)`, bias 0, so the output starts at
  :math:`\Theta(1/\sqrt{w})` and the first updates dominate it, as μP prescribes.

The matching per-parameter learning rates (hidden and readout weights :math:`\eta^*\,\text{fan\_in}_0/
\text{fan\_in}`, everything else :math:`\eta^*`) are :mod:`nnip_scaling.train.mup`'s; the paper's global rule
is :func:`nnip_scaling.models.mup_learning_rate`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["MLP", "init_hidden_", "init_readout_"]


def init_hidden_(layer: nn.Linear, *, fan_in: int | None = None) -> nn.Linear:
    r"""μP hidden init in place: :math:`W \sim \mathcal N(0, 1/\text{fan\_in})`, bias 0."""
    fan = layer.in_features if fan_in is None else fan_in
    with torch.no_grad():
        layer.weight.normal_(0.0, 1.0 / math.sqrt(max(fan, 1)))
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


def init_readout_(layer: nn.Linear) -> nn.Linear:
    r"""μP readout init in place: :math:`W \sim \mathcal N(0, 1/\text{fan\_in}^2)`, bias 0."""
    with torch.no_grad():
        layer.weight.normal_(0.0, 1.0 / max(layer.in_features, 1))
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


class MLP(nn.Module):
    r"""Linear -> SiLU -> ... -> Linear.

    .. math:: \mathrm{MLP}(x) = W_L\,\sigma(\cdots\sigma(W_1 x + b_1)\cdots) + b_L,\qquad \sigma = \mathrm{SiLU}.

    Args:
        in_features: input size.
        hidden: sizes of the hidden layers (may be empty: one linear layer).
        out_features: output size.
        readout: give the last layer the μP readout init (use for output heads); otherwise every layer
            gets the hidden init.
        bias: whether the linear layers have biases.

    Shapes:
        ``[..., in_features] -> [..., out_features]``.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        *,
        readout: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        sizes = [in_features, *hidden, out_features]
        for name, s in (("in_features", in_features), ("out_features", out_features), *(("hidden", h) for h in hidden)):
            if isinstance(s, bool) or not isinstance(s, int) or s < 1:
                raise ValueError(f"{name} sizes must be positive ints, got {s!r}")
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(sizes[:-1], sizes[1:]))
        for i, layer in enumerate(self.layers):
            if readout and i == len(self.layers) - 1:
                init_readout_(layer)
            else:
                init_hidden_(layer)
        self.act = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            if i:
                x = self.act(x)
            x = layer(x)
        return x
