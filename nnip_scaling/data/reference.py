r"""Energy referencing and normalisation (paper appendix D).

Total energies of molecules are dominated by a sum of per-element atomic energies. Following the paper
(which follows fairchem), we remove them with a linear *element reference* fitted on the training split,

.. math::

    \hat\varepsilon = \arg\min_{\varepsilon} \sum_c \Big(E_c - \sum_{Z} n_{cZ}\, \varepsilon_Z\Big)^2,
    \qquad E^{\mathrm{ref}}_c = E_c - \sum_Z n_{cZ}\, \hat\varepsilon_Z,

where :math:`n_{cZ}` counts atoms of element :math:`Z` in configuration :math:`c`, then normalise

.. math::

    e' = (E^{\mathrm{ref}} - \mu)/\sigma, \qquad f'_i = f_i / \sigma,

with :math:`\mu, \sigma` the sample mean and standard deviation of :math:`E^{\mathrm{ref}}` over the
training split. Forces are invariant to the energy shift and only rescale. A model trained on
:math:`(e', f')` predicts normalised values; :class:`Normaliser` turns them back into eV and eV/Å and is
saved with the model as plain tensors (:meth:`Normaliser.state_dict`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from nnip_scaling.graph import MAX_ATOMIC_NUMBER, AtomicGraph

if TYPE_CHECKING:  # pragma: no cover
    from nnip_scaling.data.dataset import MoleculeDataset

__all__ = ["Normaliser", "fit_element_references"]


def fit_element_references(counts: np.ndarray, energy: np.ndarray) -> np.ndarray:
    r"""Per-element reference energies by least squares on element counts.

    Solves :math:`\min_\varepsilon \lVert E - N \varepsilon \rVert_2` over the elements that occur
    (columns of ``counts`` with any non-zero entry); elements that never occur get NaN. When the
    occurring elements' counts are linearly dependent (e.g. every molecule has two H per C) the
    minimum-norm solution is returned with a warning: referenced energies are still well defined, the
    individual :math:`\varepsilon_Z` are not.

    Shapes:
        counts: ``[C, 119]`` (column ``Z`` = atoms of element ``Z``; column 0 unused).
        energy: ``[C]`` eV.
        returns: float64 ``[119]`` eV per atom, NaN for absent elements.

    Raises:
        ValueError: mismatched shapes, no configurations, non-finite energies.
    """
    counts = np.asarray(counts)
    energy = np.asarray(energy, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] != MAX_ATOMIC_NUMBER + 1:
        raise ValueError(f"counts must have shape [C, {MAX_ATOMIC_NUMBER + 1}], got {list(counts.shape)}")
    if energy.shape != (counts.shape[0],):
        raise ValueError(f"energy must have shape [C] = [{counts.shape[0]}], got {list(energy.shape)}")
    if counts.shape[0] == 0:
        raise ValueError("counts: need at least one configuration to fit references")
    if not np.isfinite(energy).all():
        raise ValueError("energy contains non-finite values")
    present = np.flatnonzero(counts.any(axis=0))
    a = counts[:, present].astype(np.float64)
    solution, _, rank, _ = np.linalg.lstsq(a, energy, rcond=None)
    if rank < present.shape[0]:
        warnings.warn(
            f"element counts have rank {rank} < {present.shape[0]} elements: per-element references are "
            "not identifiable (minimum-norm solution used)",
            stacklevel=2,
        )
    ref = np.full(MAX_ATOMIC_NUMBER + 1, np.nan)
    ref[present] = solution
    return ref


@dataclass(frozen=True, eq=False)
class Normaliser:
    r"""Element references plus mean / standard deviation of referenced energies (paper app. D).

    Attributes:
        reference: float64 ``[119]``, :math:`\varepsilon_Z` in eV (NaN for elements not seen in fitting).
        mean: :math:`\mu`, eV.
        std: :math:`\sigma`, eV (> 0).

    Create with :meth:`fit` on the training split; save with :meth:`state_dict` (plain tensors, loadable
    with ``torch.load(..., weights_only=True)``) and restore with :meth:`from_state_dict`.
    """

    reference: Tensor
    mean: float
    std: float

    def __post_init__(self) -> None:
        ref = self.reference
        if not isinstance(ref, Tensor) or ref.shape != (MAX_ATOMIC_NUMBER + 1,):
            raise ValueError(f"reference must be a tensor of shape [{MAX_ATOMIC_NUMBER + 1}]")
        if not (np.isfinite(self.mean) and np.isfinite(self.std) and self.std > 0):
            raise ValueError(f"mean must be finite and std finite and positive, got {self.mean}, {self.std}")
        object.__setattr__(self, "reference", ref.detach().to(device="cpu", dtype=torch.float64).clone())
        object.__setattr__(self, "mean", float(self.mean))
        object.__setattr__(self, "std", float(self.std))

    # ------------------------------------------------------------------ fitting and I/O
    @classmethod
    def fit(cls, dataset: MoleculeDataset) -> Normaliser:
        """Fit element references, then :math:`\\mu, \\sigma` (sample std, ``ddof=1``) on ``dataset``
        (use the training split).

        Raises:
            ValueError: fewer than two configurations, or all referenced energies equal.
        """
        if len(dataset) < 2:
            raise ValueError(f"dataset: need at least 2 configurations to fit a Normaliser, got {len(dataset)}")
        counts = dataset.element_counts()
        ref = fit_element_references(counts, dataset.energy)
        present = counts.any(axis=0)
        referenced = dataset.energy - counts[:, present] @ ref[present]
        std = float(np.std(referenced, ddof=1))
        if not std > 0:
            raise ValueError("dataset: referenced energies have zero spread; cannot normalise")
        return cls(torch.from_numpy(ref), float(np.mean(referenced)), std)

    def state_dict(self) -> dict[str, Tensor]:
        """Plain float64 tensors: ``reference [119]``, ``mean []``, ``std []``."""
        return {
            "reference": self.reference.clone(),
            "mean": torch.tensor(self.mean, dtype=torch.float64),
            "std": torch.tensor(self.std, dtype=torch.float64),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Tensor]) -> Normaliser:
        """Inverse of :meth:`state_dict`.

        Raises:
            ValueError: missing keys.
        """
        missing = {"reference", "mean", "std"} - set(state)
        if missing:
            raise ValueError(f"state: missing keys {sorted(missing)}")
        return cls(torch.as_tensor(state["reference"]), float(state["mean"]), float(state["std"]))

    # ------------------------------------------------------------------ conversions
    def _reference_sum(self, atomic_numbers: Tensor, batch: Tensor, n_graphs: int) -> Tensor:
        """float64 ``[n_graphs]``: :math:`\\sum_{i \\in g} \\varepsilon_{Z_i}`."""
        ref = self.reference.to(atomic_numbers.device)[atomic_numbers]
        if bool(torch.isnan(ref).any()):
            bad = sorted(set(atomic_numbers[torch.isnan(ref)].tolist()))
            raise ValueError(f"atomic_numbers: no reference energy for element(s) {bad} (not in the fitting data)")
        out = torch.zeros(n_graphs, dtype=torch.float64, device=atomic_numbers.device)
        return out.index_add_(0, batch, ref)

    def energy_to_ev(self, energy: Tensor, atomic_numbers: Tensor, batch: Tensor) -> Tensor:
        r"""Normalised energies back to eV: :math:`E = \sigma e' + \mu + \sum_{i} \varepsilon_{Z_i}`.

        Shapes:
            energy ``[n_graphs]``, atomic_numbers ``[n_atoms]``, batch ``[n_atoms]`` -> ``[n_graphs]``
            in ``energy``'s dtype (pass float64 to keep sub-meV precision on large total energies).
        """
        ref = self._reference_sum(atomic_numbers, batch, energy.shape[0])
        return (energy.to(torch.float64) * self.std + self.mean + ref).to(energy.dtype)

    def forces_to_ev(self, forces: Tensor) -> Tensor:
        r"""Normalised forces back to eV/Å: :math:`f = \sigma f'`. Shapes: ``[n_atoms, 3]`` -> same."""
        return forces * self.std

    def normalise(self, graph: AtomicGraph) -> AtomicGraph:
        """A copy of ``graph`` whose energy and forces (eV, eV/Å) are replaced by normalised targets.

        Raises:
            ValueError: the graph has no energy or forces.
        """
        if graph.energy is None or graph.forces is None:
            raise ValueError("graph: needs energy and forces to normalise")
        ref = self._reference_sum(graph.atomic_numbers, graph.batch, graph.n_graphs)
        e = ((graph.energy.to(torch.float64) - ref - self.mean) / self.std).to(graph.energy.dtype)
        return graph.replace(energy=e, forces=graph.forces / self.std)

    def normalise_arrays(
        self, energy: np.ndarray, forces: np.ndarray, atomic_numbers: np.ndarray, n_atoms: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Numpy form of :meth:`normalise` in float64 (used by :func:`~nnip_scaling.data.iter_batches`).

        Shapes:
            energy ``[C]``, forces ``[A, 3]``, atomic_numbers ``[A]``, n_atoms ``[C]`` ->
            (``[C]``, ``[A, 3]``) float64.
        """
        z = torch.from_numpy(np.asarray(atomic_numbers, dtype=np.int64))
        batch = torch.repeat_interleave(torch.from_numpy(np.asarray(n_atoms, dtype=np.int64)))
        ref = self._reference_sum(z, batch, len(energy)).numpy()
        e = (np.asarray(energy, dtype=np.float64) - ref - self.mean) / self.std
        return e, np.asarray(forces, dtype=np.float64) / self.std
