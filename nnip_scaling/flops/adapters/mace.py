"""mace-torch models (``MACE``, ``ScaleShiftMACE``): the dict input that MACE's calculator builds.

Input per probe graph: ``positions [n, 3]``, ``node_attrs [n, n_elements]`` (one-hot over the
model's ``atomic_numbers``), ``edge_index [2, E]`` (our edges at the model's ``r_max``, no cap),
zero ``shifts``/``unit_shifts`` (molecules, no periodic images), ``cell``, ``batch``, ``ptr`` and
``head`` (head 0). The counted call is ``model(data, training=False, compute_force=...)``: by
default the energy only (``compute_force=False``); with forces, MACE's ``autograd.grad`` of the
energy is counted too (MACE's forces are conservative).

Needs ``pip install mace-torch`` (which pins e3nn 0.4.4; nnip_scaling supports it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nnip_scaling.flops.adapters import Adapter

__all__ = ["MaceAdapter"]


class MaceAdapter(Adapter):
    """Adapter for mace-torch models.

    Args:
        compute_force: count the force computation (``-dE/dx`` by autograd) as part of the
            forward pass. Default ``False``: the energy network only, comparable to the direct
            models' κ.
    """

    name = "mace"

    def __init__(self, *, compute_force: bool = False) -> None:
        if not isinstance(compute_force, bool):
            raise TypeError(f"compute_force must be a bool, got {type(compute_force).__name__}")
        self.compute_force = compute_force

    def cutoff(self, model: nn.Module) -> float:
        return float(model.r_max)

    def inputs(self, model: nn.Module, graph: Any) -> dict[str, torch.Tensor]:
        z_table = [int(z) for z in model.atomic_numbers]
        index = torch.full((max(max(z_table), int(graph.atomic_numbers.max())) + 1,), -1, dtype=torch.int64)
        index[torch.tensor(z_table)] = torch.arange(len(z_table))
        species = index[graph.atomic_numbers.cpu()].to(graph.device)
        if bool((species < 0).any()):
            unknown = sorted(set(graph.atomic_numbers[species < 0].tolist()))
            raise ValueError(f"the MACE model knows the elements {z_table}, the graphs contain {unknown}: "
                             "build the model with these elements or pass graphs= of its elements")
        dt, dev, n_graphs = graph.dtype, graph.device, graph.n_graphs
        n_edges = graph.edge_index.shape[1]
        counts = torch.bincount(graph.batch, minlength=n_graphs)
        ptr = torch.zeros(n_graphs + 1, dtype=torch.int64, device=dev)
        ptr[1:] = torch.cumsum(counts, 0)
        return {
            "positions": graph.positions.detach().clone(),
            "node_attrs": nn.functional.one_hot(species, len(z_table)).to(dt),
            "edge_index": graph.edge_index.clone(),
            "shifts": torch.zeros(n_edges, 3, dtype=dt, device=dev),
            "unit_shifts": torch.zeros(n_edges, 3, dtype=dt, device=dev),
            "cell": torch.zeros(3 * n_graphs, 3, dtype=dt, device=dev),
            "batch": graph.batch.clone(),
            "ptr": ptr,
            "head": torch.zeros(n_graphs, dtype=torch.int64, device=dev),
        }

    def forward(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> Any:
        data = dict(inputs)  # MACE marks positions as requiring grad: keep the cached input clean
        data["positions"] = data["positions"].detach().clone()
        return model(data, training=False, compute_force=self.compute_force)
