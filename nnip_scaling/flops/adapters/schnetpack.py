"""SchNetPack models (``NeuralNetworkPotential`` with a ``SchNet``, ``PaiNN`` or ``SO3net``
representation): its dict of properties with precomputed neighbour indices.

Input per probe graph: ``_atomic_numbers``, ``_positions``, ``_idx_m`` (molecule of each atom),
``_n_atoms`` per molecule, ``_cell`` and ``_pbc`` (zero: molecules), and the neighbour list that
SchNetPack's transforms would precompute: ``_idx_i`` (centre) / ``_idx_j`` (neighbour) = our
edges' target / source rows, at the representation's ``cutoff``, no cap, zero ``_offsets``. The
counted call is ``model(inputs)`` on a fresh copy of the dict (SchNetPack writes into it): the
input modules (``PairwiseDistances``, derivative set-up), the representation and the outputs.

Needs ``pip install schnetpack``. Note: SchNetPack 2.0.x/2.1.x do not import with torch >= 2.6
(``torch.utils.data.dataloader.T_co`` was removed) and 2.2 needs Python >= 3.12.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nnip_scaling.flops.adapters import Adapter

__all__ = ["SchnetpackAdapter"]


class SchnetpackAdapter(Adapter):
    """Adapter for SchNetPack models.

    Args:
        energy_key: the output key of the energy (the ``output_key`` of its ``Atomwise`` module).
    """

    name = "schnetpack"

    def __init__(self, *, energy_key: str = "energy") -> None:
        if not isinstance(energy_key, str):
            raise TypeError(f"energy_key must be a str, got {type(energy_key).__name__}")
        self.energy_key = energy_key

    def cutoff(self, model: nn.Module) -> float:
        rep = getattr(model, "representation", model)
        cutoff = getattr(rep, "cutoff", None)
        if cutoff is None:
            raise ValueError(f"{type(model).__name__}: no representation with a 'cutoff' found; pass "
                             "estimate_kappa(..., cutoff=...) or a CallableAdapter")
        return float(cutoff)

    def inputs(self, model: nn.Module, graph: Any) -> dict[str, torch.Tensor]:
        from schnetpack import properties as p

        dt, dev, b = graph.dtype, graph.device, graph.n_graphs
        ei = graph.edge_index
        return {
            p.Z: graph.atomic_numbers.clone(),
            p.R: graph.positions.detach().clone(),
            p.idx_m: graph.batch.clone(),
            p.n_atoms: torch.bincount(graph.batch, minlength=b),
            p.cell: torch.zeros(b, 3, 3, dtype=dt, device=dev),
            p.pbc: torch.zeros(b, 3, dtype=torch.bool, device=dev),
            p.idx_i: ei[1].clone(),
            p.idx_j: ei[0].clone(),
            p.offsets: torch.zeros(ei.shape[1], 3, dtype=dt, device=dev),
        }

    def forward(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> Any:
        fresh = {k: v.detach().clone() if v.is_floating_point() else v for k, v in inputs.items()}
        return model(fresh)

    def energy(self, output: Any) -> torch.Tensor:
        return output[self.energy_key]
