r"""Radius graphs: all pairs of atoms of the same molecule within a cutoff.

The pure-torch implementation uses a cell list, so time and memory grow linearly with the number of
atoms at fixed density (a 50,000-atom liquid-density cluster needs well under a few GB), not as
:math:`n^2`. Atoms are binned into cubic cells slightly larger than the cutoff; for each of the 27
neighbouring cells the candidate sources of every target are found with a sorted-key ``searchsorted``,
candidates are processed in bounded chunks, and pairs farther than the cutoff are dropped.

Conventions (docs/conventions.md): ``edge_index[0]`` is the source :math:`u`, ``edge_index[1]`` the
target :math:`v`; the message flows :math:`u \to v`. Edges are returned sorted by (target, source).
"""

from __future__ import annotations

import importlib.util
import math
from typing import Literal

import torch
from torch import Tensor

__all__ = ["radius_graph", "coincident_pairs", "COINCIDENT_TOLERANCE", "TIE_RTOL"]

#: Two atoms closer than this (Å) are treated as coincident, which is an input error.
COINCIDENT_TOLERANCE = 1e-6

#: Relative tolerance under which a neighbour's distance counts as tied with the k-th nearest one
#: (``max_neighbors = k``); see :func:`radius_graph`.
TIE_RTOL = 1e-6
# Rounding allowance of the tie test, in units of the dtype's eps times the coordinates' magnitude.
_TIE_EPS = 64.0
# Cell coordinates beyond this cannot be converted to int64 exactly.
_MAX_CELL = 2.0**52

# Upper bound on candidate pairs materialised at once (keeps peak memory bounded on huge systems).
_CHUNK_PAIRS = 1 << 22

# Half shell: the home cell plus the 13 lexicographically positive neighbour cells. Pairs found through a
# positive offset are emitted in both directions, so every unordered pair is examined exactly once.
_HALF_SHELL = [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) >= (0, 0, 0)]


def _validate(positions: Tensor, batch: Tensor | None, cutoff: float, max_neighbors: int | None) -> Tensor:
    if not isinstance(positions, Tensor):
        raise TypeError(f"positions must be a torch.Tensor, got {type(positions).__name__}")
    if positions.dim() != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape [n_atoms, 3], got {tuple(positions.shape)}")
    if not positions.is_floating_point():
        raise TypeError(f"positions must be a floating-point tensor, got {positions.dtype}")
    n = positions.shape[0]
    if batch is None:
        batch = torch.zeros(n, dtype=torch.int64, device=positions.device)
    if not isinstance(batch, Tensor) or batch.dtype != torch.int64:
        raise TypeError("batch must be an int64 torch.Tensor of shape [n_atoms]")
    if batch.shape != (n,):
        raise ValueError(f"batch must have shape [n_atoms] = [{n}], got {tuple(batch.shape)}")
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or not math.isfinite(cutoff) or cutoff <= 0:
        raise ValueError(f"cutoff must be a positive finite number (Å), got {cutoff!r}")
    if max_neighbors is not None and (
        isinstance(max_neighbors, bool) or not isinstance(max_neighbors, int) or max_neighbors < 1
    ):
        raise ValueError(f"max_neighbors must be None or a positive int, got {max_neighbors!r}")
    if n and not bool(torch.isfinite(positions).all()):
        raise ValueError("positions contain non-finite values (NaN or inf)")
    return batch


def _ranges_to_pairs(targets: Tensor, starts: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
    """Expand per-target ranges [start, start + count) of a sorted array into (target, slot) pairs."""
    total = int(counts.sum())
    tgt = torch.repeat_interleave(targets, counts, output_size=total)
    first = torch.cumsum(counts, 0) - counts  # exclusive prefix sum
    within = torch.arange(total, device=targets.device) - torch.repeat_interleave(first, counts, output_size=total)
    slot = torch.repeat_interleave(starts, counts, output_size=total) + within
    return tgt, slot


def _compress_cells(cell: Tensor) -> Tensor:
    """Close the empty gaps of the cell grid, keeping which cells are equal or adjacent.

    Along each axis the occupied cell coordinates are renumbered in order, a gap of 2 or more empty
    cells becoming a gap of exactly 2. Cells that were equal or one apart still are, cells that were
    farther apart still are too, so the neighbour search is unchanged, but the grid has at most
    ``2 n`` cells per axis however spread out the atoms are (a bonded pair and an atom 1e9 Å away).

    Shapes:
        cell: ``[n, 3]`` int64 -> ``[n, 3]`` int64, non-negative.
    """
    out = torch.empty_like(cell)
    for d in range(3):
        values, inverse = torch.unique(cell[:, d], sorted=True, return_inverse=True)
        gaps = (values[1:] - values[:-1]).clamp(max=2)
        out[:, d] = torch.cat([gaps.new_zeros(1), torch.cumsum(gaps, 0)])[inverse]
    return out


def _cell_list_pairs(positions: Tensor, batch: Tensor, cutoff: float) -> tuple[Tensor, Tensor, Tensor]:
    """All (source, target, squared distance) with u != v, same graph, |x_u - x_v| <= cutoff."""
    device = positions.device
    n = positions.shape[0]
    n_graphs = int(batch[-1]) + 1
    # Per-graph lower corner, so graphs far apart in space do not blow up the grid.
    lower = torch.full((n_graphs, 3), math.inf, dtype=positions.dtype, device=device)
    lower = lower.scatter_reduce(0, batch.unsqueeze(1).expand(n, 3), positions, reduce="amin")
    cell_size = cutoff * (1.0 + 1e-4)  # margin: pairs at exactly the cutoff stay in adjacent cells
    scaled = (positions - lower[batch]) / cell_size
    if float(scaled.max()) >= _MAX_CELL:
        raise ValueError(
            f"positions: a molecule spans {float(scaled.max()) * cell_size:.3g} Å, more than 2^52 cutoffs; "
            "split it into separate graphs (batch) or check the units"
        )
    cell = _compress_cells(torch.floor(scaled).to(torch.int64))
    dims = cell.amax(0) + 3  # one padding cell on each side, so offsets of +-1 never alias
    if float(n_graphs) * float(dims.prod()) >= 2.0**62:
        raise ValueError(
            "positions: too many occupied cells for the cell list's 64-bit keys "
            f"({n_graphs} graphs x {dims.tolist()} cells); split the batch into smaller batches"
        )
    stride = [int(dims[1] * dims[2]), int(dims[2]), 1]
    key = batch * int(dims.prod()) + ((cell + 1) * torch.tensor(stride, device=device)).sum(-1)
    sorted_key, order = torch.sort(key, stable=True)
    cutoff_sq = cutoff * cutoff
    srcs, tgts, d2s = [], [], []
    all_targets = torch.arange(n, device=device)
    for offset in _HALF_SHELL:
        home = offset == (0, 0, 0)
        nkey = key + sum(o * st for o, st in zip(offset, stride))  # key is linear in the cell index
        start = torch.searchsorted(sorted_key, nkey, right=False)
        count = torch.searchsorted(sorted_key, nkey, right=True) - start
        has = count > 0
        targets, start, count = all_targets[has], start[has], count[has]
        if targets.numel() == 0:
            continue
        # Chunk targets so that at most ~_CHUNK_PAIRS candidate pairs exist at once.
        csum = torch.cumsum(count, 0)
        bounds = torch.searchsorted(
            csum, torch.arange(_CHUNK_PAIRS, int(csum[-1]) + _CHUNK_PAIRS, _CHUNK_PAIRS, device=device)
        )
        lo = 0
        for hi in (bounds + 1).clamp(max=targets.numel()).tolist():
            if hi <= lo:
                continue
            tgt, slot = _ranges_to_pairs(targets[lo:hi], start[lo:hi], count[lo:hi])
            src = order[slot]
            diff = positions[src] - positions[tgt]
            d2 = (diff * diff).sum(-1)
            keep = d2 <= cutoff_sq
            if home:
                keep &= src != tgt
            src, tgt, d2 = src[keep], tgt[keep], d2[keep]
            srcs.append(src)
            tgts.append(tgt)
            d2s.append(d2)
            if not home:  # the reverse direction of a cross-cell pair
                srcs.append(tgt)
                tgts.append(src)
                d2s.append(d2)
            lo = hi
    if not srcs:
        empty = torch.empty(0, dtype=torch.int64, device=device)
        return empty, empty, positions.new_empty(0)
    return torch.cat(srcs), torch.cat(tgts), torch.cat(d2s)


def _torch_cluster_pairs(positions: Tensor, batch: Tensor, cutoff: float) -> tuple[Tensor, Tensor, Tensor]:
    if importlib.util.find_spec("torch_cluster") is None:
        raise ImportError(
            "backend='torch_cluster' needs torch-cluster: pip install --no-build-isolation 'nnip_scaling[fast]'"
        )
    import torch_cluster

    max_degree = int(torch.bincount(batch).max())  # no truncation: we select neighbours ourselves
    ei = torch_cluster.radius_graph(positions, r=cutoff, batch=batch, loop=False, max_num_neighbors=max_degree)
    src, tgt = ei[0], ei[1]
    diff = positions[src] - positions[tgt]
    d2 = (diff * diff).sum(-1)
    keep = d2 <= cutoff * cutoff  # same boundary rule as the cell list
    return src[keep], tgt[keep], d2[keep]


def _lexsort(*keys: Tensor) -> Tensor:
    """Permutation sorting by keys[0], then keys[1], ... (stable, like numpy.lexsort reversed)."""
    perm = torch.arange(keys[0].numel(), device=keys[0].device)
    for k in reversed(keys):
        perm = perm[torch.sort(k[perm], stable=True).indices]
    return perm


def coincident_pairs(positions: Tensor, batch: Tensor | None = None) -> Tensor:
    """Pairs of atoms of the same graph closer than ``COINCIDENT_TOLERANCE`` (1e-6 Å).

    Loaders use it to reject coincident atoms at load time, where the file and configuration can be
    named. Linear in the number of atoms (the cell list at a 1e-6 Å radius).

    Args:
        positions: ``[n_atoms, 3]`` finite coordinates (Å).
        batch: ``[n_atoms]`` sorted graph labels, or ``None`` for one graph.

    Returns:
        ``[2, P]`` int64 pairs ``(u, v)`` with ``u < v``, sorted by ``u`` then ``v``.
    """
    batch = _validate(positions, batch, 1.0, None)
    if positions.shape[0] == 0:
        return torch.empty(2, 0, dtype=torch.int64, device=positions.device)
    if bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted in non-decreasing order")
    batch = torch.unique_consecutive(batch, return_inverse=True)[1]
    src, tgt, d2 = _cell_list_pairs(positions.detach(), batch, COINCIDENT_TOLERANCE)
    keep = (src < tgt) & (d2 < COINCIDENT_TOLERANCE**2)
    src, tgt = src[keep], tgt[keep]
    perm = _lexsort(src, tgt)
    return torch.stack([src[perm], tgt[perm]])


def _cap_neighbors(
    src: Tensor, tgt: Tensor, d2: Tensor, k: int, positions: Tensor, batch: Tensor
) -> tuple[Tensor, Tensor]:
    """Keep each target's ``k`` nearest sources plus every source tied with the ``k``-th (see radius_graph)."""
    n = positions.shape[0]
    perm = _lexsort(tgt, d2, src)
    src, tgt, d2 = src[perm], tgt[perm], d2[perm]
    counts = torch.bincount(tgt, minlength=n)
    first = torch.cumsum(counts, 0) - counts
    full = counts >= k
    kth = torch.full((n,), math.inf, dtype=d2.dtype, device=d2.device)
    kth[full] = d2[first[full] + (k - 1)]
    # Tie tolerance: relative TIE_RTOL on the k-th distance, plus the rounding of coordinate
    # differences at this molecule's scale (largest absolute coordinate, at least 1 Å).
    n_graphs = int(batch[-1]) + 1
    scale = torch.ones(n_graphs, dtype=positions.dtype, device=positions.device).scatter_reduce(
        0, batch, positions.abs().amax(1), reduce="amax")[batch]
    d_k = kth.sqrt()
    limit = (d_k * (1 + TIE_RTOL) + _TIE_EPS * torch.finfo(positions.dtype).eps * scale) ** 2
    keep = d2 <= limit[tgt]
    return src[keep], tgt[keep]


def radius_graph(
    positions: Tensor,
    batch: Tensor | None = None,
    cutoff: float = 6.0,
    max_neighbors: int | None = None,
    *,
    backend: Literal["auto", "torch", "torch_cluster"] = "torch",
) -> Tensor:
    r"""Directed edges between atoms of the same graph within ``cutoff``.

    Every ordered pair :math:`(u, v)`, :math:`u \ne v`, ``batch[u] == batch[v]`` and
    :math:`\lVert x_u - x_v \rVert \le r_c` is an edge :math:`u \to v`. With ``max_neighbors = k``, each
    target :math:`v` keeps its :math:`k` nearest sources **and every source tied with the k-th**: with
    :math:`d_k` the k-th smallest distance, every source with
    :math:`d \le d_k (1 + \tau) + 64\,\epsilon\,s` is kept (:math:`\tau` = ``TIE_RTOL`` = 1e-6,
    :math:`\epsilon` the dtype's machine epsilon, :math:`s` the molecule's largest absolute coordinate,
    at least 1 Å). Which of several equidistant neighbours survive therefore never depends on atom
    order or on rounding, so a capped graph is exactly invariant under permutations and rotations
    even on a lattice; a target can keep more than ``k`` sources when distances tie. (The truncated
    graph is not symmetric in general.)

    Args:
        positions: ``[n_atoms, 3]`` Cartesian coordinates (Å).
        batch: ``[n_atoms]`` int64 graph index, sorted; ``None`` means a single graph. Only equality
            matters: any sorted labels work (they are renumbered 0, 1, ... internally).
        cutoff: radius :math:`r_c` in Å (inclusive).
        max_neighbors: keep this many nearest sources per target, plus those tied with the last.
        backend: ``"torch"`` (cell list, default), ``"torch_cluster"`` (needs the ``fast`` extra; the
            same edge set), or ``"auto"`` (torch-cluster if installed, else torch).

    Returns:
        ``edge_index`` ``[2, n_edges]`` int64, row 0 source, row 1 target, sorted by (target, source).

    Raises:
        ValueError: bad shapes, non-finite positions, non-positive cutoff, or two atoms of the same
            graph closer than ``COINCIDENT_TOLERANCE`` (1e-6 Å). Spread-out systems are fine (empty
            space costs nothing: the cell grid is compressed).

    Shapes:
        positions ``[n, 3]``, batch ``[n]`` -> edge_index ``[2, E]``.
    """
    batch = _validate(positions, batch, cutoff, max_neighbors)
    device = positions.device
    if positions.shape[0] == 0:
        return torch.empty(2, 0, dtype=torch.int64, device=device)
    if bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted in non-decreasing order")
    batch = torch.unique_consecutive(batch, return_inverse=True)[1]  # labels -> 0, 1, ...
    pos = positions.detach()
    if backend == "auto":
        backend = "torch_cluster" if importlib.util.find_spec("torch_cluster") is not None else "torch"
    if backend == "torch":
        src, tgt, d2 = _cell_list_pairs(pos, batch, float(cutoff))
    elif backend == "torch_cluster":
        src, tgt, d2 = _torch_cluster_pairs(pos, batch, float(cutoff))
    else:
        raise ValueError(f"backend must be 'auto', 'torch' or 'torch_cluster', got {backend!r}")
    if src.numel() and bool((d2 < COINCIDENT_TOLERANCE**2).any()):
        bad = int(torch.nonzero(d2 < COINCIDENT_TOLERANCE**2)[0, 0])
        raise ValueError(
            f"positions: atoms {int(src[bad])} and {int(tgt[bad])} are coincident "
            f"(distance < {COINCIDENT_TOLERANCE} Å)"
        )
    if max_neighbors is not None and src.numel():
        src, tgt = _cap_neighbors(src, tgt, d2, max_neighbors, pos, batch)
    perm = _lexsort(tgt, src)
    return torch.stack([src[perm], tgt[perm]])
