"""Row gathers in the padded per-atom layout (``[n_atoms, max_degree, ...]`` with a zero padding row)."""

from __future__ import annotations

import torch
from torch import Tensor

from nnip_scaling.geometry.angles import _lm_table

__all__ = ["lm_channels", "pad_rows", "take", "take_padded"]


def pad_rows(x: Tensor) -> Tensor:
    """Append one zero row (the padding slot of neighbour tables)."""
    return torch.cat([x, x.new_zeros((1, *x.shape[1:]))])


def take(x: Tensor, index: Tensor) -> Tensor:
    """``x[index]`` for an integer tensor ``index`` of any shape, via ``index_select`` (several times
    faster than advanced indexing on CPU). Shapes: ``[N, *F]``, ``[*I]`` -> ``[*I, *F]``."""
    return x.index_select(0, index.reshape(-1)).view(*index.shape, *x.shape[1:])


def take_padded(x: Tensor, index: Tensor) -> Tensor:
    """``pad_rows(x)[index]``: rows of ``x``, index ``len(x)`` giving zeros."""
    return take(pad_rows(x), index)


def lm_channels(n: int, device: torch.device) -> Tensor:
    """``[n_lm, 2]`` channel of ``(Re, Im)(x^m)`` in the layout of ``basis._complex_powers`` for each ``(l, m)``."""
    ms = torch.tensor([m for _, m, _ in _lm_table(n)], dtype=torch.int64, device=device)
    return torch.stack([2 * ms, 2 * ms + 1], dim=-1)
