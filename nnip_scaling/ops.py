"""Scatter reductions over dim 0 (the aggregation step of message passing).

Pure torch (``Tensor.index_add``) by default; `torch-scatter <https://github.com/rusty1s/pytorch_scatter>`_
when installed and asked for (``backend="torch_scatter"``) or chosen by ``backend="auto"``. Both give the
same result up to floating-point summation order. On CPU the native path is as fast as torch-scatter
(see ``shared/NOTES.md``), so ``"auto"`` only picks torch-scatter on CUDA.

FLOP convention (docs/conventions.md): a scatter-add costs 1 FLOP per source element.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import torch
from torch import Tensor

__all__ = ["scatter_sum", "scatter_mean", "segment_counts"]

Backend = Literal["auto", "torch", "torch_scatter"]


def _check(src: Tensor, index: Tensor, dim_size: int) -> None:
    if not isinstance(src, Tensor):
        raise TypeError(f"src must be a torch.Tensor, got {type(src).__name__}")
    if not isinstance(index, Tensor):
        raise TypeError(f"index must be a torch.Tensor, got {type(index).__name__}")
    if index.dtype != torch.int64:
        raise TypeError(f"index must be int64, got {index.dtype}")
    if index.dim() != 1:
        raise ValueError(f"index must be 1-D [n_src], got shape {tuple(index.shape)}")
    if src.dim() < 1 or src.shape[0] != index.shape[0]:
        raise ValueError(
            f"src must have shape [n_src, ...] with n_src = len(index) = {index.shape[0]}, "
            f"got {tuple(src.shape)}"
        )
    if isinstance(dim_size, bool) or not isinstance(dim_size, int) or dim_size < 0:
        raise ValueError(f"dim_size must be a non-negative int, got {dim_size!r}")


def _use_torch_scatter(src: Tensor, backend: Backend) -> bool:
    if backend == "torch":
        return False
    if backend == "torch_scatter":
        if importlib.util.find_spec("torch_scatter") is None:
            raise ImportError(
                "backend='torch_scatter' needs torch-scatter: "
                "pip install --no-build-isolation 'nnip_scaling[fast]'"
            )
        return True
    if backend == "auto":
        return src.is_cuda and importlib.util.find_spec("torch_scatter") is not None
    raise ValueError(f"backend must be 'auto', 'torch' or 'torch_scatter', got {backend!r}")


def scatter_sum(src: Tensor, index: Tensor, dim_size: int, *, backend: Backend = "auto") -> Tensor:
    r"""Sum rows of ``src`` into ``dim_size`` buckets: :math:`out_i = \sum_{j: index_j = i} src_j`.

    Args:
        src: values to scatter, ``[n_src, *F]``.
        index: int64 bucket of each row, ``[n_src]``, values in ``[0, dim_size)``.
        dim_size: number of output rows (buckets with no source give 0).
        backend: ``"torch"`` (index_add), ``"torch_scatter"``, or ``"auto"``.

    Shapes:
        src ``[n_src, *F]``, index ``[n_src]`` -> ``[dim_size, *F]``.
    """
    _check(src, index, dim_size)
    if _use_torch_scatter(src, backend):
        import torch_scatter

        return torch_scatter.scatter_sum(src, index, dim=0, dim_size=dim_size)
    out = src.new_zeros((dim_size, *src.shape[1:]))
    return out.index_add(0, index, src)


def segment_counts(index: Tensor, dim_size: int) -> Tensor:
    """Number of sources per bucket, ``[dim_size]`` int64 (``torch.bincount`` with ``minlength``)."""
    return torch.bincount(index, minlength=dim_size)


def scatter_mean(src: Tensor, index: Tensor, dim_size: int, *, backend: Backend = "auto") -> Tensor:
    r"""Mean of rows of ``src`` per bucket; empty buckets give 0 (not NaN).

    :math:`out_i = \frac{1}{\max(1, |\{j: index_j = i\}|)} \sum_{j: index_j = i} src_j`

    Shapes:
        src ``[n_src, *F]``, index ``[n_src]`` -> ``[dim_size, *F]``.
    """
    total = scatter_sum(src, index, dim_size, backend=backend)
    count = segment_counts(index, dim_size).clamp_(min=1).to(total.dtype)
    return total / count.view(-1, *([1] * (src.dim() - 1)))
