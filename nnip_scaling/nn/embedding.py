r"""Atomic-number embedding :math:`h_v^{(0)} = E[z_v]` (paper appendix C, "h^{(0)} initialized from z").

μP: the embedding is an *input* layer (its fan-in, one-hot over ``max_z`` elements, does not grow with
the width), so its entries are initialised :math:`\mathcal N(0, 1)`: every coordinate of
:math:`h^{(0)}` is :math:`\Theta(1)` at every width.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

__all__ = ["AtomEmbedding"]


class AtomEmbedding(nn.Module):
    r"""Learned vector per element: :math:`h_v = E_{z_v - 1,:}` for :math:`z_v \in 1..\text{max\_z}`.

    Args:
        max_z: largest atomic number (1..118); the table has ``max_z`` rows (no padding row).
        dim: embedding size (>= 1).

    Shapes:
        atomic_numbers ``[n_atoms]`` int64 -> ``[n_atoms, dim]``.

    Raises:
        ValueError: atomic numbers outside ``1..max_z`` (in ``forward``).
    """

    #: μP (nnip_scaling.train.mup): the input is one-hot over elements, no fan-in grows with the width.
    mup_fan_in: ClassVar[Mapping[str, tuple[int, ...]]] = {"weight": ()}

    def __init__(self, max_z: int, dim: int) -> None:
        super().__init__()
        for name, v in (("max_z", max_z), ("dim", dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.max_z = max_z
        self.dim = dim
        self.weight = nn.Parameter(torch.randn(max_z, dim))

    def forward(self, atomic_numbers: Tensor) -> Tensor:
        if atomic_numbers.dtype != torch.int64:
            raise TypeError(f"atomic_numbers must be int64, got {atomic_numbers.dtype}")
        if atomic_numbers.numel() and not torch.compiler.is_compiling():  # data-dependent check: eager only
            lo, hi = int(atomic_numbers.min()), int(atomic_numbers.max())
            if lo < 1 or hi > self.max_z:
                raise ValueError(
                    f"atomic_numbers must lie in 1..max_z={self.max_z}, found {hi if hi > self.max_z else lo}"
                )
        return self.weight[atomic_numbers - 1]

    def extra_repr(self) -> str:
        return f"max_z={self.max_z}, dim={self.dim}"
