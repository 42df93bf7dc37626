r"""Gather-and-rotate and rotate-and-scatter between atoms and edge frames, without edge-sized temporaries.

A spherical message-passing block moves features between atoms and per-edge frames twice per layer:

.. math::

    z_e = W_e\, x_{s(e)} \quad(\text{gather, then rotate into the frame of edge } e),\qquad
    m_v = \sum_{e:\, t(e) = v} W_e^\top y_e \quad(\text{rotate back, then sum at the target}),

with :math:`W_e` the rows of the edge's Wigner-D (:func:`~nnip_scaling.nn.so2.edge_wigner`, possibly
scaled by an edge weight). Written with plain ops, each direction materialises an edge-sized
temporary (``x[index]``, or the rotated messages before ``index_add``) of ``E (l_max+1)^2 C`` numbers,
in the forward pass and again in the backward pass. On a CPU such a temporary is tens of megabytes: a
fresh allocation every time, whose pages the kernel zero-fills on first touch, and a full round trip
through memory. :func:`gather_rotate` and :func:`rotate_scatter` compute the same sums edge chunk by
edge chunk (about a million numbers per temporary, reused from the allocator's cache), writing
straight into their outputs; their backward passes do the same. The arithmetic is the same,
operation for operation (the results are bitwise those of the plain formulas; tested), and both are
differentiable twice (conservative forces trained on forces): when the backward pass itself is
recorded, it runs through the plain, differentiable formulas.

Measured on one CPU thread at ``E = 15808`` edges, ``l_max = 4, m_max = 2``, ``C = 32``: a
gather-rotate + rotate-scatter round trip 1.5x faster forward and forward + backward, with half the
page faults (``benchmarks`` numbers in docs/models/spherical.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

__all__ = ["CHUNK_NUMEL", "gather_rotate", "rotate_scatter", "rotate_scatter_add_"]

#: Target number of elements of one chunk's temporary (``edges x rows x channels``), 4 MB in float32.
CHUNK_NUMEL = 1 << 20


def _chunks(n_edges: int, per_edge: int) -> Iterator[slice]:
    step = max(1, CHUNK_NUMEL // max(per_edge, 1))
    for start in range(0, n_edges, step):
        yield slice(start, min(start + step, n_edges))


def _check(name: str, wigner: Tensor, index: Tensor, feats: Tensor, feat_name: str) -> None:
    if wigner.dim() != 3:
        raise ValueError(f"{name}: wigner must be [E, K, D], got {list(wigner.shape)}")
    if index.dim() != 1 or index.shape[0] != wigner.shape[0]:
        raise ValueError(f"{name}: index must be [E] (or [S, E]) with E = {wigner.shape[0]} (wigner's edges), got {list(index.shape)}")
    if index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name}: index must be an integer tensor, got {index.dtype}")
    if feats.dim() != 3:
        raise ValueError(f"{name}: {feat_name} must be 3-dimensional, got {list(feats.shape)}")


def _gather(x: Tensor, index: Tensor) -> Tensor:
    """``[x[index[0]] || x[index[1]] || ...]`` along channels: ``index [S, e]`` -> ``[e, D, S*C]``."""
    if index.shape[0] == 1:
        return x.index_select(0, index[0])
    return torch.cat([x.index_select(0, i) for i in index], dim=-1)


class _GatherRotate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor, wigner: Tensor) -> Tensor:
        n_edges, rows, dim = wigner.shape
        width = index.shape[0] * x.shape[-1]
        out = x.new_empty(n_edges, rows, width)
        for s in _chunks(n_edges, dim * width):
            torch.bmm(wigner[s], _gather(x, index[:, s]), out=out[s])
        ctx.save_for_backward(x, index, wigner)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None, Tensor | None]:
        x, index, wigner = ctx.saved_tensors
        need_x, _, need_w = ctx.needs_input_grad
        c = x.shape[-1]
        if torch.is_grad_enabled():  # the backward pass is being recorded: plain, differentiable ops
            gx = gw = None
            if need_x:
                back = torch.bmm(wigner.transpose(1, 2), grad).split(c, dim=-1)
                gx = x.new_zeros(x.shape)
                for i, b in zip(index, back):
                    gx = gx.index_add(0, i, b)
            if need_w:
                gw = torch.bmm(grad, _gather(x, index).transpose(1, 2))
            return gx, None, gw
        per_edge = wigner.shape[2] * grad.shape[-1]
        gx = gw = None
        if need_x:
            gx = torch.zeros_like(x)
            for s in _chunks(wigner.shape[0], per_edge):
                w_t = wigner[s].transpose(1, 2)
                for side, i in enumerate(index[:, s]):  # one product per side: contiguous sources for index_add_
                    gx.index_add_(0, i, torch.bmm(w_t, grad[s, :, side * c : (side + 1) * c]))
        if need_w:
            gw = wigner.new_empty(wigner.shape)
            for s in _chunks(wigner.shape[0], per_edge):
                torch.bmm(grad[s], _gather(x, index[:, s]).transpose(1, 2), out=gw[s])
        return gx, None, gw


def _rows(blocks: tuple[Tensor, ...], s: slice) -> Tensor:
    """Edges ``s`` of the row blocks, concatenated along the rows (a chunk-sized copy, or a view)."""
    return blocks[0][s] if len(blocks) == 1 else torch.cat([blk[s] for blk in blocks], dim=1)


def _scatter_into(out: Tensor, blocks: tuple[Tensor, ...], index: Tensor, wigner: Tensor) -> Tensor:
    for s in _chunks(wigner.shape[0], wigner.shape[2] * out.shape[-1]):
        out.index_add_(0, index[s], torch.bmm(wigner[s].transpose(1, 2), _rows(blocks, s)))
    return out


class _RotateScatter(torch.autograd.Function):
    @staticmethod
    def forward(ctx, index: Tensor, wigner: Tensor, n_atoms: int, *blocks: Tensor) -> Tensor:
        out = _scatter_into(blocks[0].new_zeros(n_atoms, wigner.shape[2], blocks[0].shape[-1]), blocks, index, wigner)
        # the features are needed only for the gradient of the rotation (positions-dependent rows)
        ctx.save_for_backward(index, wigner, *(blocks if wigner.requires_grad else ()))
        ctx.block_rows = [blk.shape[1] for blk in blocks]
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        index, wigner, *blocks = ctx.saved_tensors
        need_w, need_y = ctx.needs_input_grad[1], ctx.needs_input_grad[3:]
        if torch.is_grad_enabled():  # the backward pass is being recorded: plain, differentiable ops
            g_edges = grad.index_select(0, index)
            gy = torch.bmm(wigner, g_edges).split(ctx.block_rows, dim=1) if any(need_y) else [None] * len(need_y)
            gw = torch.bmm(torch.cat(blocks, dim=1), g_edges.transpose(1, 2)) if need_w else None
            return (None, gw, None, *(g if n else None for g, n in zip(gy, need_y)))
        n_edges, _, dim = wigner.shape
        per_edge = dim * grad.shape[-1]
        gy = [grad.new_empty(n_edges, r, grad.shape[-1]) for r in ctx.block_rows] if any(need_y) else []
        gw = wigner.new_empty(wigner.shape) if need_w else None
        for s in _chunks(n_edges, per_edge):
            g_edges = grad.index_select(0, index[s])
            if gy and len(gy) == 1:
                torch.bmm(wigner[s], g_edges, out=gy[0][s])
            elif gy:
                for g, part in zip(gy, torch.bmm(wigner[s], g_edges).split(ctx.block_rows, dim=1)):
                    g[s] = part
            if gw is not None:
                torch.bmm(_rows(tuple(blocks), s), g_edges.transpose(1, 2), out=gw[s])
        return (None, gw, None, *(g if n else None for g, n in zip(gy or [None] * len(need_y), need_y)))


def gather_rotate(x: Tensor, index: Tensor, wigner: Tensor) -> Tensor:
    r"""Rotate the features of each edge's atom(s) into the edge frame: :math:`z_e = W_e\,x_{\text{index}[e]}`.

    With ``index [E]``: equal to ``torch.bmm(wigner, x.index_select(0, index))``. With ``index [S, E]``
    (e.g. ``edge_index``: source and target): the ``S`` rotated features side by side along the
    channels, :math:`[W_e x_{\text{index}[0,e]} \,\|\, W_e x_{\text{index}[1,e]} \,\|\, \ldots]`, in
    one product per chunk (each edge's rotation is read once for all sides). Bitwise the plain
    formula; computed edge chunk by edge chunk with no edge-sized temporary, in the forward and the
    backward pass; differentiable in ``x`` and ``wigner``, twice.

    Args:
        x: atom features in the l-major layout.
        index: the atom of each edge, ``[E]``, or of each side of each edge, ``[S, E]`` (integers).
        wigner: per-edge rotation rows, e.g. :func:`~nnip_scaling.nn.so2.edge_wigner`.

    Shapes:
        x: ``[n_atoms, D, C]``, index: ``[E]`` or ``[S, E]``, wigner: ``[E, K, D]`` -> ``[E, K, S*C]``.
    """
    sides = index if index.dim() == 2 else index[None]
    _check("gather_rotate", wigner, sides[0] if sides.shape[0] else index, x, "x")
    if x.shape[1] != wigner.shape[2]:
        raise ValueError(f"gather_rotate: x has {x.shape[1]} rows but wigner expects {wigner.shape[2]}")
    return _GatherRotate.apply(x, sides, wigner)


def rotate_scatter(y: Tensor | Sequence[Tensor], index: Tensor, wigner: Tensor, n_atoms: int) -> Tensor:
    r"""Rotate edge-frame features back and sum them at their atoms:
    :math:`m_v = \sum_{e:\,\text{index}[e] = v} W_e^\top y_e`.

    Equal to ``torch.zeros(n_atoms, D, C).index_add(0, index, torch.bmm(wigner.transpose(1, 2), y))``
    (bitwise: the edges are added in the same order), computed edge chunk by edge chunk with no
    edge-sized temporary, in the forward and the backward pass; differentiable in ``y`` and
    ``wigner``, twice. ``y`` may be given as consecutive row blocks (e.g. the order blocks of the
    m-major layout): they are concatenated chunk by chunk, never as a whole.

    Args:
        y: edge-frame features (m-major rows), or a sequence of row blocks ``[E, K_i, C]``.
        index: the atom each edge's message goes to, ``int64``.
        wigner: per-edge rotation rows (optionally scaled by an edge weight).
        n_atoms: number of atoms of the output.

    Shapes:
        y: ``[E, K, C]`` (or blocks with ``sum K_i = K``), index: ``[E]``, wigner: ``[E, K, D]`` ->
        ``[n_atoms, D, C]``.
    """
    blocks = _checked_blocks("rotate_scatter", y, index, wigner)
    return _RotateScatter.apply(index, wigner, int(n_atoms), *blocks)


def rotate_scatter_add_(out: Tensor, y: Tensor | Sequence[Tensor], index: Tensor, wigner: Tensor) -> Tensor:
    r"""In-place :func:`rotate_scatter`: ``out += rotate_scatter(y, index, wigner, out.shape[0])``, for
    code that runs without autograd (it raises if a gradient would be needed), e.g. inference over
    chunks of edges accumulating into one output.

    Shapes:
        out: ``[n_atoms, D, C]``; y, index, wigner as in :func:`rotate_scatter`. Returns ``out``.
    """
    blocks = _checked_blocks("rotate_scatter_add_", y, index, wigner)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (out, wigner, *blocks)):
        raise RuntimeError("rotate_scatter_add_ does not record gradients: use rotate_scatter, or run under torch.no_grad()")
    if out.shape != (out.shape[0], wigner.shape[2], blocks[0].shape[2]):
        raise ValueError(f"rotate_scatter_add_: out must be [n_atoms, {wigner.shape[2]}, {blocks[0].shape[2]}], got {list(out.shape)}")
    return _scatter_into(out, blocks, index, wigner)


def _checked_blocks(name: str, y: Tensor | Sequence[Tensor], index: Tensor, wigner: Tensor) -> tuple[Tensor, ...]:
    blocks = (y,) if isinstance(y, Tensor) else tuple(y)
    if not blocks or any(not isinstance(b, Tensor) or b.dim() != 3 for b in blocks):
        raise ValueError(f"{name}: y must be a 3-dimensional tensor [E, K, C] or a sequence of them")
    _check(name, wigner, index, blocks[0], "y")
    rows = sum(b.shape[1] for b in blocks)
    if any(b.shape[0] != wigner.shape[0] or b.shape[2] != blocks[0].shape[2] for b in blocks) or rows != wigner.shape[1]:
        shapes = [list(b.shape) for b in blocks]
        raise ValueError(f"{name}: y {shapes} does not match wigner {list(wigner.shape)} in [E, K]")
    return blocks
