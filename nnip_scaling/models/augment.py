r"""Rotation augmentation for the unconstrained family (paper sections 2.2 and 4.5).

:func:`random_rotate` applies an independent Haar-random rotation :math:`R_g \in SO(3)` to every molecule
:math:`g` of a batch, about the molecule's centroid :math:`c_g`:

.. math:: x_i' = R_g (x_i - c_g) + c_g,\qquad F_i' = R_g F_i,\qquad r_{uv}' = R_g r_{uv},

which is exactly how labels transform (energies are invariant and kept). Edges stay valid (distances
are preserved), so ``edge_index`` is kept and ``edge_vec`` is rotated.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from nnip_scaling.geometry import random_rotation
from nnip_scaling.graph import AtomicGraph
from nnip_scaling.ops import scatter_mean

__all__ = ["random_rotate", "rotate"]


def rotate(graph: AtomicGraph, rotations: Tensor) -> AtomicGraph:
    r"""Rotate each molecule about its centroid by a given matrix (positions, forces, edge vectors).

    Args:
        graph: the batch.
        rotations: ``[3, 3]`` (one for all) or ``[n_graphs, 3, 3]`` orthogonal matrices (acting on
            column vectors, :math:`x \mapsto R x`); reflections are allowed.

    Shapes:
        ``rotations [n_graphs, 3, 3]`` or ``[3, 3]``; the graph's shapes are unchanged.

    Raises:
        TypeError: ``graph`` is not an ``AtomicGraph``.
        ValueError: ``rotations`` has the wrong shape.
    """
    if not isinstance(graph, AtomicGraph):
        raise TypeError(f"graph must be an AtomicGraph, got {type(graph).__name__}")
    if not isinstance(rotations, Tensor):
        raise TypeError(f"rotations must be a torch.Tensor, got {type(rotations).__name__}")
    if rotations.shape == (3, 3):
        rotations = rotations.expand(graph.n_graphs, 3, 3)
    if tuple(rotations.shape) != (graph.n_graphs, 3, 3):
        raise ValueError(
            f"rotations must have shape [3, 3] or [n_graphs, 3, 3] = [{graph.n_graphs}, 3, 3], "
            f"got {list(rotations.shape)}"
        )
    rot = rotations.to(dtype=graph.dtype, device=graph.device)
    per_atom = rot[graph.batch]  # [n_atoms, 3, 3]
    centroid = scatter_mean(graph.positions, graph.batch, graph.n_graphs)[graph.batch]
    pos = torch.einsum("nij,nj->ni", per_atom, graph.positions - centroid) + centroid
    forces = None if graph.forces is None else torch.einsum("nij,nj->ni", per_atom, graph.forces)
    # A rotation keeps the neighbour set: edge_index is kept, edge_vec is derived from the new positions.
    return dataclasses.replace(graph, positions=pos, forces=forces)


def random_rotate(graph: AtomicGraph, generator: torch.Generator) -> AtomicGraph:
    """Rotate every molecule of ``graph`` by its own Haar-random rotation (see the module docstring).

    Args:
        graph: the batch (positions, optional forces and edges).
        generator: the explicit random source (rotations are drawn on its device in float64, then cast
            to the graph's dtype and device).

    Returns:
        a new graph; energies, atomic numbers, batch and ``edge_index`` are shared with the input.
    """
    if not isinstance(graph, AtomicGraph):
        raise TypeError(f"graph must be an AtomicGraph, got {type(graph).__name__}")
    rotations = random_rotation(graph.n_graphs, generator=generator, dtype=torch.float64)
    return rotate(graph, rotations)
