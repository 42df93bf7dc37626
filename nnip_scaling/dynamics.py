r"""Microcanonical (NVE) molecular dynamics in pure torch: velocity Verlet and energy-conservation measures.

A small, dependency-free integrator for testing and benchmarking energy conservation (ASE's
``VelocityVerlet`` with :class:`nnip_scaling.ase.Calculator` does the same for users who have ASE).
Units: Å, fs, amu, eV, K.

.. math::

    v_{n+1/2} = v_n + \tfrac{\Delta t}{2} F_n / m,\qquad x_{n+1} = x_n + \Delta t\, v_{n+1/2},\qquad
    v_{n+1} = v_{n+1/2} + \tfrac{\Delta t}{2} F_{n+1} / m .

Velocity Verlet is symplectic and time-reversible: for a smooth energy the total energy
:math:`E_\text{pot} + E_\text{kin}` fluctuates by :math:`O((\omega\Delta t)^2)` (:math:`\omega` the
fastest vibration) without a systematic drift; a jump of the energy surface shows as a step of the
total energy that does not shrink with :math:`\Delta t`.

.. code-block:: python

    traj = velocity_verlet(model, graph, timestep=0.25, steps=400,
                           velocities=maxwell_boltzmann(graph.atomic_numbers, 300.0, generator=g))
    traj.drift_per_atom_per_ps, traj.max_jump
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from nnip_scaling.graph import AtomicGraph

__all__ = ["ACCELERATION_UNIT", "BOLTZMANN_EV", "NVETrajectory", "atomic_masses", "maxwell_boltzmann", "velocity_verlet"]

#: 1 eV/(Å amu) in Å/fs² (CODATA 2018: e / (1e-10 m * u) * 1e-30 s²/fs² * 1e10 Å/m).
ACCELERATION_UNIT = 1.602176634e-19 / (1.66053906660e-27 * 1e-10) * 1e-20
#: Boltzmann's constant in eV/K.
BOLTZMANN_EV = 8.617333262e-5

# IUPAC conventional standard atomic weights (2021), Z = 1..36.
_MASSES = (
    1.008, 4.0026, 6.94, 9.0122, 10.81, 12.011, 14.007, 15.999, 18.998, 20.180,
    22.990, 24.305, 26.982, 28.085, 30.974, 32.06, 35.45, 39.95, 39.098, 40.078,
    44.956, 47.867, 50.942, 51.996, 54.938, 55.845, 58.933, 58.693, 63.546, 65.38,
    69.723, 72.630, 74.922, 78.971, 79.904, 83.798,
)


def atomic_masses(atomic_numbers: Tensor, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """Standard atomic weights (amu) of ``atomic_numbers`` ``[n]`` -> ``[n]``.

    Built in for H..Kr (Z <= 36); heavier elements take ASE's table when ASE is installed.

    Raises:
        ValueError: an element beyond Kr without ASE (pass ``masses=`` to :func:`velocity_verlet`).
    """
    z = atomic_numbers.detach().cpu().to(torch.int64)
    if z.numel() and (int(z.min()) < 1 or int(z.max()) > 118):
        raise ValueError(f"atomic_numbers must lie in 1..118, got {int(z.min())}..{int(z.max())}")
    if z.numel() == 0 or int(z.max()) <= len(_MASSES):
        table = torch.tensor((0.0, *_MASSES), dtype=dtype)
    else:
        try:
            from ase.data import atomic_masses as ase_masses
        except ImportError as err:
            raise ValueError(
                f"atomic_masses: no built-in mass for Z={int(z.max())} (built in: Z <= {len(_MASSES)}); "
                "install ASE (pip install 'nnip_scaling[data]') or pass masses= explicitly"
            ) from err
        table = torch.as_tensor(ase_masses, dtype=dtype)
    return table[z].to(atomic_numbers.device)


def maxwell_boltzmann(
    masses: Tensor, temperature: float, *, generator: torch.Generator | None = None, batch: Tensor | None = None
) -> Tensor:
    r"""Velocities (Å/fs) drawn at ``temperature`` (K), :math:`v \sim \mathcal N(0, k_B T / m)`, with
    the centre-of-mass velocity of each graph removed.

    Shapes:
        ``masses [n]`` (amu) -> ``[n, 3]`` (dtype of ``masses``; drawn on the CPU with ``generator``).
    """
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (K), got {temperature!r}")
    m = masses.detach().cpu()
    v = torch.randn((m.shape[0], 3), generator=generator, dtype=m.dtype)
    v = v * torch.sqrt(BOLTZMANN_EV * temperature / m * ACCELERATION_UNIT)[:, None]
    b = torch.zeros(m.shape[0], dtype=torch.int64) if batch is None else batch.detach().cpu()
    n_graphs = int(b.max()) + 1 if b.numel() else 0
    p = torch.zeros((n_graphs, 3), dtype=m.dtype).index_add(0, b, m[:, None] * v)
    mt = torch.zeros(n_graphs, dtype=m.dtype).index_add(0, b, m)
    v = v - (p / mt[:, None])[b]
    return v.to(masses.device)


@dataclass(frozen=True, eq=False)
class NVETrajectory:
    """Energies of an NVE run (float64, eV) and its final state.

    Attributes:
        potential, kinetic: ``[steps + 1]`` energies at every step (the first is the initial state).
        timestep: :math:`\\Delta t` (fs).
        n_atoms: atoms in the system.
        positions, velocities: ``[n_atoms, 3]`` final state (Å, Å/fs).
        seconds: wall time of the integration (s).
    """

    potential: Tensor
    kinetic: Tensor
    timestep: float
    n_atoms: int
    positions: Tensor
    velocities: Tensor
    seconds: float

    @property
    def total(self) -> Tensor:
        """``[steps + 1]`` total energy :math:`E_\\text{pot} + E_\\text{kin}` (eV)."""
        return self.potential + self.kinetic

    @property
    def steps(self) -> int:
        return int(self.potential.shape[0]) - 1

    @property
    def spread(self) -> float:
        """Largest minus smallest total energy (eV)."""
        return float(self.total.max() - self.total.min())

    @property
    def max_jump(self) -> float:
        """Largest change of the total energy in one step (eV)."""
        return float(self.total.diff().abs().max()) if self.steps else 0.0

    @property
    def drift_per_atom_per_ps(self) -> float:
        """Least-squares slope of the total energy against time, per atom (eV/atom/ps); the usual
        energy-conservation figure of an MD code (fluctuations average out, a systematic drift or a
        few jumps do not)."""
        if self.steps < 1:
            return 0.0
        t = torch.arange(self.steps + 1, dtype=torch.float64) * (self.timestep * 1e-3)  # ps
        e = self.total.to(torch.float64)
        tc = t - t.mean()
        return float((tc * (e - e.mean())).sum() / (tc * tc).sum()) / self.n_atoms

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else math.inf


def _energy_forces(model: Any, graph: AtomicGraph) -> tuple[Tensor, Tensor]:
    out = model(graph)
    energy, forces = out.energy.detach(), out.forces.detach()
    if energy.shape != (graph.n_graphs,) or forces.shape != (graph.n_atoms, 3):
        raise ValueError(
            f"model output: energy must be [{graph.n_graphs}] and forces [{graph.n_atoms}, 3], "
            f"got {list(energy.shape)} and {list(forces.shape)}"
        )
    return energy.to(torch.float64).sum(), forces.to(torch.float64)


def velocity_verlet(
    model: Any,
    graph: AtomicGraph,
    *,
    timestep: float,
    steps: int,
    velocities: Tensor | None = None,
    masses: Tensor | None = None,
) -> NVETrajectory:
    r"""Integrate Newton's equations for ``steps`` steps of ``timestep`` fs (module docstring).

    Args:
        model: ``model(graph) -> out`` with ``out.energy [n_graphs]`` (eV) and ``out.forces
            [n_atoms, 3]`` (eV/Å), e.g. a conservative :class:`~nnip_scaling.models.Potential` in eval
            mode. It receives a graph without edges at every step and builds its own.
        graph: the initial positions (Å) and atomic numbers; every graph of a batch is integrated.
        timestep: :math:`\Delta t` in fs (> 0).
        steps: number of steps (>= 0).
        velocities: ``[n_atoms, 3]`` initial velocities (Å/fs); default zero.
        masses: ``[n_atoms]`` masses (amu); default :func:`atomic_masses`.

    Returns:
        an :class:`NVETrajectory` (energies in float64; positions in the graph's dtype).

    Raises:
        ValueError: bad ``timestep``/``steps``/shapes, or a model output of the wrong shape.
    """
    if isinstance(timestep, bool) or not isinstance(timestep, (int, float)) or not (math.isfinite(timestep) and timestep > 0):
        raise ValueError(f"timestep must be a finite number > 0 (fs), got {timestep!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    n = graph.n_atoms
    dtype = graph.dtype
    m = atomic_masses(graph.atomic_numbers) if masses is None else masses.to(torch.float64)
    if m.shape != (n,) or not bool((m > 0).all()):
        raise ValueError(f"masses must be [{n}] positive values (amu), got shape {list(m.shape)}")
    v = torch.zeros((n, 3), dtype=torch.float64) if velocities is None else velocities.detach().to(torch.float64)
    if v.shape != (n, 3):
        raise ValueError(f"velocities must have shape [{n}, 3], got {list(v.shape)}")
    m, v = m.to(graph.positions.device), v.to(graph.positions.device)
    inv_m = (ACCELERATION_UNIT / m)[:, None]
    x = graph.positions.detach().to(torch.float64)
    pot = torch.empty(steps + 1, dtype=torch.float64)
    kin = torch.empty(steps + 1, dtype=torch.float64)
    t0 = time.perf_counter()
    e, f = _energy_forces(model, _at(graph, x, dtype))
    for i in range(steps + 1):
        pot[i] = e
        kin[i] = 0.5 * (m[:, None] * v * v).sum() / ACCELERATION_UNIT
        if i == steps:
            break
        v = v + (0.5 * timestep) * f * inv_m
        x = x + timestep * v
        e, f = _energy_forces(model, _at(graph, x, dtype))
        v = v + (0.5 * timestep) * f * inv_m
    seconds = time.perf_counter() - t0
    return NVETrajectory(pot, kin, float(timestep), n, x.to(dtype), v, seconds)


def _at(graph: AtomicGraph, x: Tensor, dtype: torch.dtype) -> AtomicGraph:
    """``graph`` without edges at positions ``x`` (the model rebuilds its own edges)."""
    return AtomicGraph.from_arrays(x.to(dtype), graph.atomic_numbers, graph.batch, n_graphs=graph.n_graphs)
