"""Per-configuration geometry checks shared by the loaders (private).

:func:`coincident_atoms` finds configurations with two atoms closer than
:data:`~nnip_scaling.neighbors.COINCIDENT_TOLERANCE` (1e-6 Å), so that a loader can name the file and the
configuration at load time instead of ``radius_graph`` failing later inside a training batch.
"""

from __future__ import annotations

import numpy as np

from nnip_scaling.neighbors import COINCIDENT_TOLERANCE

__all__ = ["coincident_atoms"]

# Configurations up to this size are checked by a sort-and-sweep along the widest axis (fast for
# molecules); larger ones by the cell list, which stays linear for lattices with many equal coordinates.
_SWEEP_MAX_ATOMS = 64


def coincident_atoms(positions: np.ndarray, n_atoms: np.ndarray) -> dict[int, tuple[int, int]]:
    """Configurations that have two coincident atoms, with the first such pair (local atom indices).

    Args:
        positions: ``[A, 3]`` finite coordinates (Å), configurations concatenated.
        n_atoms: ``[C]`` atoms per configuration.

    Returns:
        ``{configuration index: (i, j)}`` with ``i < j`` indices inside the configuration; empty when
        every configuration is fine.
    """
    pos = np.asarray(positions, dtype=np.float64)
    counts = np.asarray(n_atoms, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if counts.size else counts
    small = np.flatnonzero((counts >= 2) & (counts <= _SWEEP_MAX_ATOMS))
    large = np.flatnonzero(counts > _SWEEP_MAX_ATOMS)
    found: dict[int, tuple[int, int]] = {}
    if small.size:
        found.update(_sweep(pos, starts, counts, small))
    if large.size:
        found.update(_cell_list(pos, starts, counts, large))
    return dict(sorted(found.items()))


def _rows(starts: np.ndarray, counts: np.ndarray, configs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global atom rows of ``configs`` and, per row, the position of its configuration in ``configs``."""
    which = np.repeat(np.arange(configs.size), counts[configs])
    first = np.repeat(starts[configs], counts[configs])
    offset = np.arange(which.size) - np.repeat(np.cumsum(counts[configs]) - counts[configs], counts[configs])
    return first + offset, which


def _sweep(pos: np.ndarray, starts: np.ndarray, counts: np.ndarray,
           configs: np.ndarray) -> dict[int, tuple[int, int]]:
    """Sort atoms by (configuration, coordinate along the widest axis); a coincident pair is then
    within ``COINCIDENT_TOLERANCE`` along that axis, so only such runs of neighbours are compared."""
    rows, which = _rows(starts, counts, configs)
    x = pos[rows]
    axis = int(np.argmax(x.max(0) - x.min(0))) if x.size else 0
    by_x = np.argsort(x[:, axis], kind="stable")
    order = by_x[np.argsort(which[by_x], kind="stable")]  # by configuration, then by x (as lexsort)
    xs, cs = x[order, axis], which[order]
    out: dict[int, tuple[int, int]] = {}
    candidates = np.arange(order.size - 1)
    shift = 1
    while candidates.size:
        j = candidates + shift
        ok = j < order.size
        i, j = candidates[ok], j[ok]
        near = (cs[i] == cs[j]) & (xs[j] - xs[i] < COINCIDENT_TOLERANCE)
        i, j = i[near], j[near]
        diff = x[order[i]] - x[order[j]]
        hit = (diff * diff).sum(-1) < COINCIDENT_TOLERANCE**2
        for a, b in zip(i[hit].tolist(), j[hit].tolist()):
            c = int(configs[cs[a]])
            u, v = sorted((int(rows[order[a]] - starts[c]), int(rows[order[b]] - starts[c])))
            out[c] = min(out.get(c, (u, v)), (u, v))
        candidates = i
        shift += 1
    return out


def _cell_list(pos: np.ndarray, starts: np.ndarray, counts: np.ndarray,
               configs: np.ndarray) -> dict[int, tuple[int, int]]:
    """Large configurations: the linear-time cell list of :func:`~nnip_scaling.neighbors.coincident_pairs`."""
    import torch

    from nnip_scaling.neighbors import coincident_pairs

    rows, batch = _rows(starts, counts, configs)
    pairs = coincident_pairs(torch.from_numpy(pos[rows]), torch.from_numpy(batch)).numpy()
    out: dict[int, tuple[int, int]] = {}
    for u, v in pairs.T.tolist():
        c = int(configs[batch[u]])
        out.setdefault(c, (int(rows[u] - starts[c]), int(rows[v] - starts[c])))
    return out
