"""Hypothesis strategies for molecules, batches and rotations.

Needs the ``test`` extra (``pip install 'nnip_scaling[test]'``), which provides hypothesis.

Molecules are drawn as an atom count, element list and a seed; positions are then placed by a seeded
random sequential process inside a sphere whose volume grows with the atom count, rejecting any atom
closer than ``min_distance`` to one already placed. This keeps examples physically plausible (no
overlapping atoms) and fully reproducible from hypothesis' choices.
"""

from __future__ import annotations

import math

import numpy as np
import torch

try:
    from hypothesis import strategies as st
except ImportError as err:  # pragma: no cover - exercised only without the test extra
    raise ImportError("nnip_scaling.testing.strategies needs hypothesis: pip install 'nnip_scaling[test]'") from err

from nnip_scaling.graph import AtomicGraph

__all__ = ["molecules", "batches", "rotations", "place_atoms"]

#: H..Cl
DEFAULT_ELEMENTS = tuple(range(1, 18))


def place_atoms(n_atoms: int, *, min_distance: float, seed: int, density: float = 0.05) -> np.ndarray:
    """Random positions ``[n_atoms, 3]`` (Å) with every pair at least ``min_distance`` apart.

    Atoms are placed one by one, uniformly in a ball of volume ``n_atoms / density`` (density in
    atoms/Å^3, default 0.05, about half that of liquid water's heavy atoms plus hydrogens), rejecting
    candidates that come too close; the ball grows if placement gets stuck.
    """
    if n_atoms < 0:
        raise ValueError(f"n_atoms must be >= 0, got {n_atoms}")
    if not min_distance > 0:
        raise ValueError(f"min_distance must be positive, got {min_distance}")
    rng = np.random.default_rng(seed)
    radius = max((3.0 * n_atoms / (4.0 * math.pi * density)) ** (1.0 / 3.0), min_distance)
    pos = np.zeros((0, 3))
    tries = 0
    while pos.shape[0] < n_atoms:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction) + 1e-300
        cand = direction * radius * rng.random() ** (1.0 / 3.0)
        if pos.shape[0] == 0 or np.min(np.linalg.norm(pos - cand, axis=1)) >= min_distance:
            pos = np.vstack([pos, cand])
            tries = 0
        else:
            tries += 1
            if tries > 200:
                radius *= 1.1
                tries = 0
    return pos


@st.composite
def molecules(
    draw: st.DrawFn,
    *,
    min_atoms: int = 1,
    max_atoms: int = 40,
    elements: tuple[int, ...] = DEFAULT_ELEMENTS,
    min_distance: float = 0.7,
) -> tuple[np.ndarray, np.ndarray]:
    """A molecule ``(Z [n] int64, R [n, 3] float64)`` with 1-40 atoms of H..Cl by default."""
    n = draw(st.integers(min_atoms, max_atoms))
    z = np.array(draw(st.lists(st.sampled_from(elements), min_size=n, max_size=n)), dtype=np.int64)
    seed = draw(st.integers(0, 2**32 - 1))
    return z, place_atoms(n, min_distance=min_distance, seed=seed)


@st.composite
def batches(
    draw: st.DrawFn,
    *,
    min_graphs: int = 1,
    max_graphs: int = 4,
    min_atoms: int = 1,
    max_atoms: int = 20,
    dtype: torch.dtype = torch.float64,
    cutoff: float | None = None,
    max_neighbors: int | None = None,
) -> AtomicGraph:
    """An :class:`AtomicGraph` of several molecules; with ``cutoff``, edges are built too."""
    n = draw(st.integers(min_graphs, max_graphs))
    mols = [draw(molecules(min_atoms=min_atoms, max_atoms=max_atoms)) for _ in range(n)]
    g = AtomicGraph.from_molecules(mols, dtype=dtype)
    return g.with_edges(cutoff, max_neighbors) if cutoff is not None else g


@st.composite
def rotations(draw: st.DrawFn, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A proper rotation ``[3, 3]``: Haar random, a 90-degree turn about an axis, or near the identity."""
    from nnip_scaling.geometry import random_rotation, rotation_about_axis

    kind = draw(st.sampled_from(("haar", "quarter", "near_identity")))
    if kind == "haar":
        gen = torch.Generator().manual_seed(draw(st.integers(0, 2**62)))
        return random_rotation(generator=gen, dtype=dtype)
    if kind == "quarter":
        axis = torch.eye(3, dtype=dtype)[draw(st.integers(0, 2))]
        sign = draw(st.sampled_from((1.0, -1.0)))
        return rotation_about_axis(axis, torch.tensor(sign * math.pi / 2, dtype=dtype))
    axis = torch.tensor(draw(st.tuples(*[st.floats(-1, 1)] * 3)), dtype=dtype)
    if float(axis.norm()) < 1e-3:
        axis = torch.tensor([0.0, 0.0, 1.0], dtype=dtype)
    angle = draw(st.floats(1e-8, 1e-3))
    return rotation_about_axis(axis, torch.tensor(angle, dtype=dtype))
