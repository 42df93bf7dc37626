r"""Checks that a potential is fit for molecular dynamics: a continuous energy and a realistic scale.

* :func:`scan_crossing` moves one atom along a line in tiny steps through the point where its distance
  to another atom equals a given radius (a cutoff, or another neighbour's distance for a rank swap) and
  returns the energies; :attr:`CrossingScan.kink` is the largest second difference of the energy along
  the scan, :math:`\max_k |E_{k+1} - 2E_k + E_{k-1}|`, which is :math:`O(E'' h^2)` for a :math:`C^2`
  energy and of the size of the jump for a discontinuous one.
* :func:`scale_to_rms_force` turns a randomly initialised model into a "trained-looking" one for
  dynamics tests: its energy (hence forces) multiplied so that the RMS force on a structure is a
  realistic ~1 eV/Å (:class:`ScaledPotential`).
* :func:`fastest_vibration_period` from the mass-weighted Hessian, to choose an MD time step that is
  small against the fastest vibration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from nnip_scaling.graph import AtomicGraph

__all__ = ["CrossingScan", "ScaledPotential", "crossing_distance", "fastest_vibration_period", "scale_to_rms_force", "scan_crossing"]


@dataclass(frozen=True, eq=False)
class _Out:
    energy: Tensor
    forces: Tensor


class ScaledPotential(nn.Module):
    """``model`` with energy and forces multiplied by ``scale`` (equivalently, its energy readout
    weights scaled): ``out.energy * scale``, ``out.forces * scale``."""

    def __init__(self, model: nn.Module, scale: float) -> None:
        super().__init__()
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
        self.model = model
        self.scale = float(scale)

    @property
    def config(self) -> Any:
        return getattr(self.model, "config", None)

    def forward(self, graph: AtomicGraph) -> _Out:
        out = self.model(graph)
        return _Out(out.energy * self.scale, out.forces * self.scale)


def scale_to_rms_force(model: nn.Module, graph: AtomicGraph, rms_force: float = 1.0) -> ScaledPotential:
    """Wrap ``model`` so that the RMS force (over atoms and components) on ``graph`` is ``rms_force``
    (eV/Å; typical of molecules at a few hundred K, e.g. the built-in GFN2-xTB set).

    Raises:
        ValueError: the model's forces on ``graph`` are all zero.
    """
    f = model(graph).forces.detach().to(torch.float64)
    rms = float(f.square().mean().sqrt())
    if not rms > 0:
        raise ValueError("scale_to_rms_force: the model's forces on graph are zero, nothing to scale")
    return ScaledPotential(model, rms_force / rms)


def fastest_vibration_period(model: nn.Module, graph: AtomicGraph, masses: Tensor | None = None) -> float:
    r"""Period :math:`2\pi/\omega_\text{max}` (fs) of the fastest normal mode of ``model`` at ``graph``.

    :math:`\omega^2_\text{max}` is the largest eigenvalue of the mass-weighted Hessian
    :math:`M^{-1/2} H M^{-1/2}`, :math:`H = -\partial F/\partial x` by finite differences of the model's
    forces (central, :math:`10^{-4}` Å; ``6 n`` force evaluations).

    Args:
        model: ``model(graph) -> out.forces [n, 3]`` (eV/Å).
        graph: one structure (float64 recommended).
        masses: ``[n]`` amu (default :func:`~nnip_scaling.dynamics.atomic_masses`).
    """
    from nnip_scaling.dynamics import ACCELERATION_UNIT, atomic_masses

    n = graph.n_atoms
    m = atomic_masses(graph.atomic_numbers) if masses is None else masses.to(torch.float64)
    x0 = graph.positions.detach()
    h = 1e-4
    cols = []
    for k in range(3 * n):
        dx = torch.zeros(3 * n, dtype=x0.dtype)
        dx[k] = h
        fp = model(_moved(graph, x0 + dx.view(n, 3))).forces.detach().to(torch.float64).reshape(-1)
        fm = model(_moved(graph, x0 - dx.view(n, 3))).forces.detach().to(torch.float64).reshape(-1)
        cols.append(-(fp - fm) / (2 * h))
    hess = torch.stack(cols, dim=1)
    hess = 0.5 * (hess + hess.T)
    w = m.repeat_interleave(3).rsqrt()
    lam = float(torch.linalg.eigvalsh(hess * w[:, None] * w[None, :]).max())
    if not lam > 0:
        return math.inf
    return 2 * math.pi / math.sqrt(lam * ACCELERATION_UNIT)


def _moved(graph: AtomicGraph, positions: Tensor) -> AtomicGraph:
    return AtomicGraph.from_arrays(positions, graph.atomic_numbers, graph.batch, n_graphs=graph.n_graphs)


def crossing_distance(positions: Tensor, atom: int, direction: Tensor, partner: int, radius: float) -> float:
    r"""Smallest :math:`t > 0` with :math:`\|x_\text{atom} + t\,d - x_\text{partner}\| = r` (Å along the
    unit ``direction``), or ``inf`` if the line never reaches that distance."""
    d = direction.to(torch.float64) / direction.to(torch.float64).norm()
    p = positions[atom].to(torch.float64) - positions[partner].to(torch.float64)
    b, c = float(2 * (p * d).sum()), float((p * p).sum()) - radius * radius
    disc = b * b - 4 * c
    if disc < 0:
        return math.inf
    roots = [(-b - math.sqrt(disc)) / 2, (-b + math.sqrt(disc)) / 2]
    positive = [t for t in roots if t > 1e-9]
    return min(positive) if positive else math.inf


@dataclass(frozen=True, eq=False)
class CrossingScan:
    """Energies along a fine scan through a crossing (see :func:`scan_crossing`).

    Attributes:
        t: ``[K]`` displacements (Å) along the direction; the crossing lies between the two middle points.
        energy: ``[K]`` energies (float64, eV).
    """

    t: Tensor
    energy: Tensor

    @property
    def kink(self) -> float:
        """Largest :math:`|E_{k+1} - 2E_k + E_{k-1}|` (eV): :math:`O(E''h^2)` if the energy is smooth,
        the size of the jump if it is not."""
        return float(self.energy.diff(n=2).abs().max())

    @property
    def step_change(self) -> float:
        """Largest :math:`|E_{k+1} - E_k|` (eV)."""
        return float(self.energy.diff().abs().max())


def scan_crossing(
    model: Any,
    graph: AtomicGraph,
    *,
    atom: int,
    direction: Tensor,
    partner: int,
    radius: float,
    step: float = 1e-6,
    points: int = 8,
) -> CrossingScan:
    """Move ``atom`` along ``direction`` through the point where its distance to ``partner`` is
    ``radius`` (Å), ``points`` energies ``step`` Å apart centred on it (float64 energies).

    Raises:
        ValueError: the line never reaches ``radius``, or bad arguments.
    """
    if points < 4 or points % 2:
        raise ValueError(f"points must be an even number >= 4, got {points}")
    pos = graph.positions.detach()
    t_star = crossing_distance(pos, atom, direction, partner, radius)
    if not math.isfinite(t_star):
        raise ValueError(f"atom {atom} moving along {direction.tolist()} never reaches distance {radius} from atom {partner}")
    d = (direction.to(torch.float64) / direction.to(torch.float64).norm()).to(pos.dtype)
    ts = t_star + step * (torch.arange(points, dtype=torch.float64) - (points - 1) / 2)
    energies = []
    for t in ts.tolist():
        x = pos.clone()
        x[atom] = x[atom] + t * d
        energies.append(float(model(_moved(graph, x)).energy.detach().to(torch.float64).sum()))
    return CrossingScan(ts, torch.tensor(energies, dtype=torch.float64))
