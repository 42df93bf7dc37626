"""nnip_scaling.dynamics: velocity Verlet on an analytic potential, Maxwell-Boltzmann velocities, errors."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.dynamics import ACCELERATION_UNIT, BOLTZMANN_EV, atomic_masses, maxwell_boltzmann, velocity_verlet


@dataclass
class Out:
    energy: torch.Tensor
    forces: torch.Tensor


class Harmonic(torch.nn.Module):
    """E = k/2 (|x_0 - x_1| - r0)^2 for a two-atom graph."""

    def __init__(self, k: float = 30.0, r0: float = 1.0) -> None:
        super().__init__()
        self.k, self.r0 = k, r0

    def forward(self, g: AtomicGraph) -> Out:
        d = g.positions[0] - g.positions[1]
        r = d.norm()
        e = 0.5 * self.k * (r - self.r0) ** 2
        f0 = -self.k * (r - self.r0) * d / r
        return Out(e.reshape(1), torch.stack([f0, -f0]))


def _pair(stretch: float = 0.1) -> AtomicGraph:
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.0 + stretch, 0.0, 0.0]], dtype=torch.float64)
    return AtomicGraph.from_arrays(pos, torch.tensor([1, 1]))


def test_acceleration_unit():
    # 1 eV/Å on 1 amu: 1.602e-19 N / 1.6605e-27 kg = 9.6485e17 m/s^2 = 9.6485e-3 Å/fs^2
    assert ACCELERATION_UNIT == pytest.approx(9.648533e-3, rel=1e-6)


def test_harmonic_pair_oscillates_with_the_right_period_and_conserves_energy():
    k, m = 30.0, float(atomic_masses(torch.tensor([1]))[0])
    period = 2 * math.pi / math.sqrt(k / (m / 2) * ACCELERATION_UNIT)  # reduced mass m/2
    dt = period / 200
    traj = velocity_verlet(Harmonic(k), _pair(0.1), timestep=dt, steps=200)
    # after one period the bond is back at its initial stretch (Verlet phase error O((w dt)^2))
    assert float((traj.positions[1] - traj.positions[0]).norm()) == pytest.approx(1.1, abs=2e-4)
    assert traj.total[0] == pytest.approx(0.5 * k * 0.01, rel=1e-12)
    assert traj.spread < 1e-3 * float(traj.total[0])
    assert abs(traj.drift_per_atom_per_ps) < 1e-3


def test_energy_error_shrinks_quadratically_with_the_step():
    spreads = []
    for dt in (0.4, 0.2):
        spreads.append(velocity_verlet(Harmonic(), _pair(0.1), timestep=dt, steps=int(40 / dt)).spread)
    assert 3.0 < spreads[0] / spreads[1] < 5.0  # O(dt^2): ratio 4


def test_maxwell_boltzmann_temperature_and_zero_momentum():
    z = torch.tensor([1, 6, 8] * 2000)
    m = atomic_masses(z)
    v = maxwell_boltzmann(m, 500.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose((m[:, None] * v).sum(0), torch.zeros(3, dtype=m.dtype), atol=1e-9)
    kinetic = 0.5 * float((m[:, None] * v * v).sum()) / ACCELERATION_UNIT
    temperature = 2 * kinetic / (3 * len(z) * BOLTZMANN_EV)
    assert temperature == pytest.approx(500.0, rel=0.03)  # 18000 degrees of freedom: 1% std


def test_atomic_masses_and_errors():
    assert atomic_masses(torch.tensor([1, 6, 8])).tolist() == pytest.approx([1.008, 12.011, 15.999])
    with pytest.raises(ValueError, match="atomic_numbers"):
        atomic_masses(torch.tensor([0]))
    with pytest.raises(ValueError, match="timestep"):
        velocity_verlet(Harmonic(), _pair(), timestep=0.0, steps=1)
    with pytest.raises(ValueError, match="steps"):
        velocity_verlet(Harmonic(), _pair(), timestep=0.1, steps=-1)
    with pytest.raises(ValueError, match="velocities"):
        velocity_verlet(Harmonic(), _pair(), timestep=0.1, steps=1, velocities=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="temperature"):
        maxwell_boltzmann(atomic_masses(torch.tensor([1])), -1.0)
