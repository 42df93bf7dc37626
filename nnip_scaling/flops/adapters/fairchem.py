"""fairchem-core 2.x models (eSEN / UMA backbones ``eSCNMDBackbone`` and their heads): an
``AtomicData`` batch.

Input per probe graph: ``AtomicData`` with our edges at the backbone's ``cutoff`` and
``max_neighbors`` (``otf_graph=False`` backbones read ``data.edge_index``; row 0 the source, row
1 the centre, as ours), zero ``cell_offsets`` and ``cell`` (molecules), ``pbc`` off, per-graph
``nedges``, ``charge`` and ``spin`` 0, no fixed atoms, tags 0. The model can be

* a ``HydraModel``/``HydraModelV2`` (``.backbone`` + ``.output_heads``): called as ``model(data)``;
* a container with ``"backbone"`` and ``"heads"`` (e.g. an ``nn.ModuleDict``): the backbone, then
  every head on its embedding (pass ``adapter="fairchem"``: its class is torch's);
* a backbone alone: ``model(data)`` (its embedding).

Needs fairchem-core (``pip install fairchem-core``; its wheels also pin GPU-only packages, see
docs/flops.md for an install that keeps a CPU torch).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nnip_scaling.flops.adapters import Adapter

__all__ = ["FairchemAdapter"]


def _backbone(model: nn.Module) -> nn.Module:
    if hasattr(model, "backbone") and isinstance(model.backbone, nn.Module):
        return model.backbone
    if isinstance(model, nn.ModuleDict) and "backbone" in model:
        return model["backbone"]
    return model


class FairchemAdapter(Adapter):
    """Adapter for fairchem-core 2.x models (see the module docstring)."""

    name = "fairchem"

    def cutoff(self, model: nn.Module) -> float:
        cutoff = getattr(_backbone(model), "cutoff", None)
        if cutoff is None:
            raise ValueError(f"{type(model).__name__}: no fairchem backbone with a 'cutoff' found; "
                             "pass estimate_kappa(..., cutoff=...) or a CallableAdapter")
        return float(cutoff)

    def max_neighbors(self, model: nn.Module) -> int | None:
        cap = getattr(_backbone(model), "max_neighbors", None)
        return None if cap is None else int(cap)

    def inputs(self, model: nn.Module, graph: Any) -> Any:
        from fairchem.core.datasets.atomic_data import AtomicData

        dt, dev, b, n = graph.dtype, graph.device, graph.n_graphs, graph.n_atoms
        ei = graph.edge_index
        zeros = torch.zeros(n, dtype=torch.int64, device=dev)
        return AtomicData(
            pos=graph.positions.detach().clone(), atomic_numbers=graph.atomic_numbers.clone(),
            cell=torch.zeros(b, 3, 3, dtype=dt, device=dev), pbc=torch.zeros(b, 3, dtype=torch.bool, device=dev),
            natoms=torch.bincount(graph.batch, minlength=b), edge_index=ei.clone(),
            cell_offsets=torch.zeros(ei.shape[1], 3, dtype=dt, device=dev),
            nedges=torch.bincount(graph.batch[ei[1]], minlength=b),
            charge=torch.zeros(b, dtype=torch.int64, device=dev), spin=torch.zeros(b, dtype=torch.int64, device=dev),
            fixed=zeros, tags=zeros.clone(), batch=graph.batch.clone(), sid=[str(i) for i in range(b)],
        )

    def forward(self, model: nn.Module, inputs: Any) -> Any:
        if isinstance(model, nn.ModuleDict) and "backbone" in model and "heads" in model:
            emb = model["backbone"](inputs)
            return {name: head(inputs, emb) for name, head in model["heads"].items()}
        return model(inputs)

    def energy(self, output: Any) -> torch.Tensor:
        """``output["energy"]["energy"]`` (a head's dict) or ``output["energy"]``."""
        e = output["energy"]
        return e["energy"] if isinstance(e, dict) else e
