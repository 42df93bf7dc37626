"""Integer bookkeeping of a graph for the directional blocks: neighbour tables, reverse edges and the
quadruplet subgraph (:func:`build_directional_index`). No parameters, nothing differentiable."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nnip_scaling.geometry.angles import NeighborTable, find_edges, neighbor_table, reverse_edges, select_edges
from nnip_scaling.nn._edges import require_edges

__all__ = ["DirectionalIndex", "QuadrupletLayout", "build_directional_index"]


@dataclass(frozen=True, eq=False)
class QuadrupletLayout:
    """Integer layout of the quadruplets ``j -> k -> v <- u`` (see :func:`build_directional_index`).

    Attributes:
        edge: ``[E_q]`` ids (into the embedding graph) of the quadruplet-graph edges ``k -> v``.
        table: ``[n_atoms, D_q]`` quadruplet edges into each atom (ids into ``edge``), pad ``E_q``.
        inner_edge: ``[E_q, D]`` embedding edges ``j -> k`` into the source ``k`` of each quadruplet
            edge (pad ``E``).
        inner_mask: ``[E_q, D]`` bool, valid slot and ``j != v``.
        outer_mask: ``[n_atoms, D, D_q]`` bool, output edge ``u -> v`` (slot ``a``) and quadruplet edge
            ``k -> v`` (slot ``b``) both present and ``k != u``.
        correction: ``[n_atoms, D, D_q]`` flat index ``q * D + s`` of the inner pair ``(u -> k, k -> v)``
            whose ``j = u`` term must be removed, or ``E_q * D`` (a zero row) where ``u -> k`` is not an
            edge.
    """

    edge: Tensor
    table: Tensor
    inner_edge: Tensor
    inner_mask: Tensor
    outer_mask: Tensor
    correction: Tensor

    @property
    def n_edges(self) -> int:
        return int(self.edge.shape[0])


@dataclass(frozen=True, eq=False)
class DirectionalIndex:
    """Integer bookkeeping of one graph for :class:`DirectionalBlock` (no floats but the edge selection).

    Attributes:
        n_atoms: number of atoms.
        edge_index: ``[2, E]`` embedding graph (row 0 source ``u``, row 1 target ``v``).
        table: :class:`~nnip_scaling.geometry.angles.NeighborTable` of the edges by target
            (``table.edge [n_atoms, D]``).
        flat_slot: ``[E]`` position ``v * D + slot`` of each edge in the flattened table.
        reverse: ``[E]`` id of the reverse edge ``v -> u`` or ``-1``.
        triplet_mask: ``[n_atoms, D, D]`` bool, slots ``a != b`` both holding edges (triplets
            ``k -> v <- u`` in the dense layout).
        quadruplets: :class:`QuadrupletLayout` or ``None`` when quadruplets are off.
    """

    n_atoms: int
    edge_index: Tensor
    table: NeighborTable
    flat_slot: Tensor
    reverse: Tensor
    triplet_mask: Tensor
    quadruplets: QuadrupletLayout | None

    @property
    def n_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def max_degree(self) -> int:
        return self.table.max_degree


def build_directional_index(
    edge_index: Tensor,
    edge_length: Tensor,
    n_atoms: int,
    *,
    quadruplets: bool = True,
    quadruplet_cutoff: float | None = None,
    quadruplet_max_neighbors: int | None = None,
) -> DirectionalIndex:
    r"""Neighbour tables, reverse edges and the quadruplet subgraph of an embedding graph.

    The quadruplet graph (GemNet-OC's ``qint`` graph: its own cutoff and neighbour cap) is selected from
    the embedding edges by :func:`~nnip_scaling.geometry.angles.select_edges`: edges with
    :math:`r \le` ``quadruplet_cutoff``, at most ``quadruplet_max_neighbors`` per target (nearest first,
    exact ties with the last one kept). Nothing here is differentiable; the geometry is recomputed from
    ``edge_vec`` in :class:`DirectionalBasis`.

    Args:
        edge_index: ``[2, E]`` int64 embedding graph, no repeated edges (any order).
        edge_length: ``[E]`` edge lengths (only used to select the quadruplet graph).
        n_atoms: number of atoms.
        quadruplets: build the quadruplet layout.
        quadruplet_cutoff: radius of the quadruplet graph (Å); ``None`` keeps every edge.
        quadruplet_max_neighbors: cap of the quadruplet graph; ``None``: no cap.

    Shapes:
        ``[2, E]``, ``[E]`` -> :class:`DirectionalIndex` (``D`` = largest in-degree, ``D_q`` that of
        the quadruplet graph).
    """
    require_edges("build_directional_index", edge_index=edge_index)
    table = neighbor_table(edge_index, n_atoms, by="target")
    src, tgt = edge_index[0], edge_index[1]
    n_edges = edge_index.shape[1]
    d = table.max_degree
    device = edge_index.device
    flat_slot = tgt * d + table.slot
    valid = table.mask
    triplet_mask = valid[:, :, None] & valid[:, None, :] & ~torch.eye(d, dtype=torch.bool, device=device)
    quad: QuadrupletLayout | None = None
    if quadruplets:
        q_edge = select_edges(
            edge_index, edge_length, n_atoms, cutoff=quadruplet_cutoff, max_neighbors=quadruplet_max_neighbors
        )
        n_q = q_edge.shape[0]
        q_table = neighbor_table(edge_index[:, q_edge], n_atoms, by="target")
        q_src, q_tgt = src[q_edge], tgt[q_edge]
        src_pad = torch.cat([src, src.new_full((1,), -1)])
        inner_edge = table.edge[q_src]  # [E_q, D] edges j -> k into k = source of the middle edge
        inner_mask = (inner_edge < n_edges) & (src_pad[inner_edge] != q_tgt[:, None])
        # outer pairs (u -> v in slot a, k -> v in slot b), k != u
        q_src_pad = torch.cat([q_src, q_src.new_full((1,), -2)])
        u = src_pad[table.edge]  # [n, D], -1 on padding
        k = q_src_pad[q_table.edge]  # [n, D_q], -2 on padding
        outer_mask = valid[:, :, None] & q_table.mask[:, None, :] & (u[:, :, None] != k[:, None, :])
        # j = u terms: the inner pair (u -> k, k -> v), present when u -> k is an embedding edge
        uu = u[:, :, None].expand_as(outer_mask).clamp(min=0)
        kk = k[:, None, :].expand_as(outer_mask).clamp(min=0)
        e_uk = find_edges(edge_index, n_atoms, uu, kk)
        has = outer_mask & (e_uk >= 0)
        q_ids = q_table.edge[:, None, :].expand_as(outer_mask)
        slot_pad = torch.cat([table.slot, table.slot.new_zeros(1)])
        corr = q_ids * d + slot_pad[e_uk.clamp(min=0)]
        correction = torch.where(has, corr, torch.full_like(corr, n_q * d))
        quad = QuadrupletLayout(
            edge=q_edge,
            table=q_table.edge,
            inner_edge=inner_edge,
            inner_mask=inner_mask,
            outer_mask=outer_mask,
            correction=correction,
        )
    return DirectionalIndex(
        n_atoms=n_atoms,
        edge_index=edge_index,
        table=table,
        flat_slot=flat_slot,
        reverse=reverse_edges(edge_index, n_atoms),
        triplet_mask=triplet_mask,
        quadruplets=quad,
    )
