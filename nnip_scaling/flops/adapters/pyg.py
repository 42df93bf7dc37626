"""PyTorch Geometric's molecular models: ``SchNet`` and ``ViSNet``, called as ``model(z, pos, batch)``.

Both build their radius graph inside ``forward`` with ``torch_geometric.nn.radius_graph``, which
needs ``torch-cluster`` or ``pyg-lib``; neither installs from the package index without compiling.
The adapter hands them our neighbour list instead, through the hook each model has, for the
duration of the counted call:

* ``SchNet``: its ``interaction_graph`` (a documented constructor argument) is replaced by one
  returning our edges and their lengths (the lengths are computed inside the count, as PyG's
  ``RadiusInteractionGraph`` does after its search);
* ``ViSNet``: its ``representation_model.distance`` module is replaced by one returning our edges
  plus one self-loop per atom (weight 0), as PyG's ``Distance`` does with ``add_self_loops=True``.

Edges: at the model's ``cutoff`` with its ``max_num_neighbors`` cap (PyG's cap keeps an arbitrary
subset of the neighbours, ours the nearest; the count is the same). ``DimeNet`` / ``DimeNet++``
are not supported: besides the radius graph they build triplets with ``torch-sparse``'s
``SparseTensor``, another compiled package.

Needs ``pip install torch-geometric`` (pure Python).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nnip_scaling.flops.adapters import Adapter

__all__ = ["PygAdapter"]


class _SchNetEdges(nn.Module):
    """``(pos, batch) -> (edge_index, edge_weight)`` from a fixed edge list (SchNet's hook)."""

    def __init__(self, edge_index: Tensor) -> None:
        super().__init__()
        self.edge_index = edge_index

    def forward(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        src, dst = self.edge_index
        return self.edge_index, (pos[src] - pos[dst]).norm(dim=-1)


class _ViSNetEdges(nn.Module):
    """``(pos, batch) -> (edge_index, edge_weight, edge_vec)`` from a fixed edge list, with the
    self-loops ViSNet's ``Distance`` adds (zero vector, zero weight)."""

    def __init__(self, edge_index: Tensor, n_atoms: int, self_loops: bool) -> None:
        super().__init__()
        if self_loops:
            loops = torch.arange(n_atoms, device=edge_index.device).expand(2, n_atoms)
            edge_index = torch.cat([edge_index, loops], dim=1)
        self.edge_index, self.n_real = edge_index, edge_index.shape[1] - (n_atoms if self_loops else 0)

    def forward(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        vec = pos[self.edge_index[0]] - pos[self.edge_index[1]]
        weight = torch.zeros(vec.shape[0], dtype=vec.dtype, device=vec.device)
        weight[: self.n_real] = vec[: self.n_real].norm(dim=-1)
        return self.edge_index, weight, vec


def _kind(model: nn.Module) -> str:
    name = type(model).__name__
    if name in ("DimeNet", "DimeNetPlusPlus"):
        raise ValueError(f"{name} is not supported by the 'pyg' adapter: it builds triplets with "
                         "torch-sparse's SparseTensor (a compiled package); count it with "
                         "count_flops in an environment that has torch-sparse and torch-cluster")
    if hasattr(model, "interaction_graph"):
        return "schnet"
    if hasattr(getattr(model, "representation_model", None), "distance"):
        return "visnet"
    raise ValueError(f"the 'pyg' adapter knows SchNet and ViSNet, not {name}; use a CallableAdapter")


class PygAdapter(Adapter):
    """Adapter for PyTorch Geometric's ``SchNet`` and ``ViSNet`` (see the module docstring)."""

    name = "pyg"

    def cutoff(self, model: nn.Module) -> float:
        if _kind(model) == "schnet":
            return float(model.cutoff)
        return float(model.representation_model.distance.cutoff)

    def max_neighbors(self, model: nn.Module) -> int | None:
        """SchNet: its ``RadiusInteractionGraph``'s cap (``None`` for a custom interaction
        graph); ViSNet: its ``Distance``'s cap."""
        if _kind(model) == "schnet":
            cap = getattr(model.interaction_graph, "max_num_neighbors", None)
            return None if cap is None else int(cap)
        return int(model.representation_model.distance.max_num_neighbors)

    def inputs(self, model: nn.Module, graph: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        _kind(model)
        return (graph.atomic_numbers.clone(), graph.positions.detach().clone(), graph.batch.clone(),
                graph.edge_index.clone())

    def forward(self, model: nn.Module, inputs: tuple[Tensor, Tensor, Tensor, Tensor]) -> Any:
        z, pos, batch, edge_index = inputs
        if _kind(model) == "schnet":
            owner, attr, hook = model, "interaction_graph", _SchNetEdges(edge_index)
        else:
            owner, attr = model.representation_model, "distance"
            hook = _ViSNetEdges(edge_index, z.shape[0], bool(owner.distance.add_self_loops))
        original = getattr(owner, attr)
        setattr(owner, attr, hook)
        try:
            return model(z, pos.detach().clone(), batch)
        finally:
            setattr(owner, attr, original)

    def energy(self, output: Any) -> Tensor:
        """SchNet returns ``[n_graphs, 1]``, ViSNet ``(y [n_graphs, 1], dy)``."""
        y = output[0] if isinstance(output, tuple) else output
        return y.reshape(-1)
