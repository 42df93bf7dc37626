"""Validation: the loss of eq. (1) of a model on a data set, averaged over molecules (also across DDP ranks)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from nnip_scaling.data import MoleculeDataset, Normaliser, iter_batches
from nnip_scaling.train.config import _check_int
from nnip_scaling.train.distributed import DistInfo
from nnip_scaling.train.loss import check_weights, loss_terms
from nnip_scaling.train.results import EvalResult

__all__ = ["evaluate", "eval_sums", "first_param"]


def first_param(model: torch.nn.Module) -> Tensor:
    for p in model.parameters():
        if p.is_floating_point():
            return p
    raise ValueError("model has no floating-point parameters")


@torch.no_grad()
def eval_sums(model: Any, dataset: MoleculeDataset, normaliser: Normaliser, batch_size: int,
               weights: tuple[float, float], info: DistInfo, dtype: torch.dtype, device: torch.device) -> Tensor:
    """float64 ``[3]``: sums over this rank's molecules of (energy term, force term, 1)."""
    idx = np.arange(info.rank, len(dataset), info.world_size)
    sums = torch.zeros(3, dtype=torch.float64)
    if idx.size:
        for g in iter_batches(dataset.select(idx), batch_size, normaliser=normaliser, dtype=dtype, device=device):
            out = model(g)
            t = loss_terms(out.energy, out.forces, g, energy_weight=weights[0], force_weight=weights[1])
            sums += torch.stack([t.energy.sum().double().cpu(), t.force.sum().double().cpu(),
                                 torch.tensor(float(g.n_graphs), dtype=torch.float64)])
    if info.world_size > 1:
        import torch.distributed as dist

        s = sums.to(info.device)
        dist.all_reduce(s)
        sums = s.cpu()
    return sums


def evaluate(
    model: Any,
    dataset: MoleculeDataset,
    *,
    normaliser: Normaliser,
    batch_size: int = 64,
    energy_weight: float = 1.0,
    force_weight: float = 1.0,
) -> EvalResult:
    """The loss of eq. (1) of ``model`` on ``dataset``, averaged over molecules (no gradients).

    Args:
        model: a potential (or :class:`~nnip_scaling.train.GroupAveraged`); it is not switched to eval
            mode here (do that, and ``optimizer.eval()`` for schedule-free weights, before).
        dataset: labelled molecules.
        normaliser: the energy referencing of the training run (appendix D).
        batch_size: molecules per batch.
        energy_weight, force_weight: :math:`\\lambda_e, \\lambda_f`.

    Returns:
        :class:`EvalResult`.
    """
    if not isinstance(dataset, MoleculeDataset):
        raise TypeError(f"dataset must be a MoleculeDataset, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    if not isinstance(normaliser, Normaliser):
        raise TypeError(f"normaliser must be a Normaliser, got {type(normaliser).__name__}")
    _check_int("batch_size", batch_size, minimum=1)
    weights = check_weights(energy_weight, force_weight)
    p = first_param(model)
    s = eval_sums(model, dataset, normaliser, batch_size, weights, DistInfo(0, 1, 0, p.device), p.dtype, p.device)
    n = float(s[2])
    return EvalResult(loss=float((s[0] + s[1]) / n), energy_loss=float(s[0] / n), force_loss=float(s[1] / n),
                      n_molecules=int(n))
