"""An ASE calculator for nnip_scaling models: relax molecules or run molecular dynamics with a model.

Example::

    from ase.md.verlet import VelocityVerlet
    from nnip_scaling.ase import Calculator

    atoms.calc = Calculator(model, normaliser=normaliser)    # model(graph) -> out.energy, out.forces
    VelocityVerlet(atoms, timestep=0.5 * ase.units.fs).run(100)

The calculator warns (:class:`~nnip_scaling.models.smoothness.DiscontinuousEnergyWarning`) when the
model it wraps cannot conserve energy in dynamics: direct forces, the paper's mean aggregation, or a
neighbour cap that can bind for the system at hand; each warning names the option that fixes it
(:func:`~nnip_scaling.models.smoothness.discontinuities`, docs/models/smoothness.md).

Importing this module needs ASE (``pip install 'nnip_scaling[data]'``); the rest of the package never
imports it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from nnip_scaling.data.reference import Normaliser
from nnip_scaling.graph import AtomicGraph
from nnip_scaling.models.config import ModelConfig
from nnip_scaling.models.smoothness import Discontinuity, DiscontinuousEnergyWarning, discontinuities

try:
    from ase.calculators.calculator import Calculator as _AseCalculator
    from ase.calculators.calculator import all_changes
except ImportError as _err:  # pragma: no cover - exercised only without ase
    raise ImportError("nnip_scaling.ase needs ASE: pip install 'nnip_scaling[data]'") from _err

__all__ = ["Calculator"]


class Calculator(_AseCalculator):
    r"""Energy (eV) and forces (eV/Å) of a non-periodic ``ase.Atoms`` from a model.

    The model is called as ``out = model(graph)`` on a one-molecule
    :class:`~nnip_scaling.AtomicGraph` and must return an object with ``out.energy`` ``[1]`` and
    ``out.forces`` ``[n_atoms, 3]``. If it was trained on normalised targets (paper app. D), pass its
    :class:`~nnip_scaling.data.Normaliser`: predictions are turned back into eV and eV/Å by
    :math:`E = \sigma e' + \mu + \sum_i \varepsilon_{Z_i}` and :math:`F = \sigma f'` (in float64).

    The model is used as it is (call ``model.eval()`` first if it has dropout or similar); gradients
    stay enabled so that models computing forces as :math:`-\partial E/\partial x` work.

    Warnings: if the model has a ``config`` (every :func:`~nnip_scaling.models.build_model` model), a
    :class:`~nnip_scaling.models.smoothness.DiscontinuousEnergyWarning` is issued once per offending
    option: at construction for ``forces="direct"`` and ``aggregation="mean"``, and at the first
    calculation on a system where a neighbour cap (the model's ``max_neighbors`` or
    ``quadruplet_max_neighbors``, or this calculator's ``max_neighbors``) can bind, i.e. has fewer
    than ``n_atoms - 1`` slots. Silence them with :func:`warnings.filterwarnings` if intended (e.g.
    geometry relaxations, where conservation does not matter).

    Args:
        model: a ``torch.nn.Module`` (or any callable) with the interface above.
        normaliser: converts normalised predictions to eV, eV/Å; ``None`` when the model predicts eV.
        cutoff: if given, edges are built here with ``graph.with_edges(cutoff, max_neighbors)``;
            otherwise the model receives a graph without edges and builds its own.
        max_neighbors: neighbour cap used with ``cutoff``.
        dtype: floating dtype of the graph (default: the dtype of the model's first parameter, or
            float32 when it has none).
        device: device of the graph (default: that of the model's first parameter, or CPU).
        **kwargs: passed to :class:`ase.calculators.calculator.Calculator`.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(
        self,
        model: Any,
        normaliser: Normaliser | None = None,
        *,
        cutoff: float | None = None,
        max_neighbors: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        **kwargs: Any,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable (model(graph) -> out), got {type(model).__name__}")
        if normaliser is not None and not isinstance(normaliser, Normaliser):
            raise TypeError(f"normaliser must be a Normaliser or None, got {type(normaliser).__name__}")
        if cutoff is not None and not (isinstance(cutoff, (int, float)) and cutoff > 0):
            raise ValueError(f"cutoff must be a positive number or None, got {cutoff!r}")
        if max_neighbors is not None and cutoff is None:
            raise ValueError("max_neighbors needs a cutoff")
        first = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
        if dtype is None:
            dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be floating, got {dtype}")
        super().__init__(**kwargs)
        self.model = model
        self.normaliser = normaliser
        self.cutoff = cutoff
        self.max_neighbors = max_neighbors
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else (first.device if first is not None else torch.device("cpu"))
        self._warned: set[str] = set()
        self._warn([d for d in self._discontinuities(None) if d.option in ("forces", "aggregation")])

    def _discontinuities(self, n_atoms: int | None) -> list[Discontinuity]:
        """What breaks energy conservation for a system of ``n_atoms`` (``None``: structural options only)."""
        config = getattr(self.model, "config", None)
        found = list(discontinuities(config, n_atoms=n_atoms)) if isinstance(config, ModelConfig) else []
        if n_atoms is None:
            return [d for d in found if d.option in ("forces", "aggregation")]
        if self.max_neighbors is not None and n_atoms - 1 > self.max_neighbors:
            found.append(Discontinuity(
                "Calculator(max_neighbors=...)", self.max_neighbors,
                "the calculator's neighbour cap can bind and makes the energy jump when two neighbours swap rank",
                "max_neighbors=None"))
        return found

    def _warn(self, found: list[Discontinuity]) -> None:
        for d in found:
            if d.option in self._warned:
                continue
            self._warned.add(d.option)
            warnings.warn(
                f"nnip_scaling.ase.Calculator: the model's energy is not conserved in dynamics: {d}",
                DiscontinuousEnergyWarning,
                stacklevel=3,
            )

    def calculate(self, atoms: Any = None, properties: Any = ("energy",), system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if np.any(atoms.pbc):
            raise ValueError("atoms: periodic systems are not supported (pbc must be all False)")
        n = len(atoms)
        self._warn(self._discontinuities(n))
        graph = AtomicGraph.from_arrays(
            torch.as_tensor(np.asarray(atoms.positions), dtype=self.dtype),
            torch.as_tensor(np.asarray(atoms.numbers), dtype=torch.int64),
            device=self.device,
        )
        if self.cutoff is not None:
            graph = graph.with_edges(float(self.cutoff), self.max_neighbors)
        out = self.model(graph)
        energy = out.energy.detach()
        forces = out.forces.detach()
        if tuple(energy.shape) != (1,):
            raise ValueError(f"model output: energy must have shape [1] for one molecule, got {list(energy.shape)}")
        if tuple(forces.shape) != (n, 3):
            raise ValueError(f"model output: forces must have shape [{n}, 3], got {list(forces.shape)}")
        energy = energy.to(torch.float64)
        forces = forces.to(torch.float64)
        if self.normaliser is not None:
            energy = self.normaliser.energy_to_ev(energy, graph.atomic_numbers, graph.batch)
            forces = self.normaliser.forces_to_ev(forces)
        e = float(energy[0])
        self.results = {"energy": e, "free_energy": e, "forces": forces.cpu().numpy()}
