"""nnip_scaling.ase.Calculator with a small conservative pair potential: values, units, MD energy drift."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

pytest.importorskip("ase")
import ase  # noqa: E402
import ase.units  # noqa: E402
from ase.md.verlet import VelocityVerlet  # noqa: E402

from nnip_scaling.ase import Calculator  # noqa: E402
from nnip_scaling.data import Normaliser  # noqa: E402


@dataclass
class Out:
    energy: torch.Tensor
    forces: torch.Tensor


class Morse(torch.nn.Module):
    """E = sum_{i<j} D (1 - exp(-a (r_ij - r0)))^2 - D, forces by autograd (conservative)."""

    def __init__(self, d=0.5, a=1.5, r0=1.2, dtype=torch.float64):
        super().__init__()
        self.d = torch.nn.Parameter(torch.tensor(d, dtype=dtype))
        self.a, self.r0 = a, r0
        self.calls = 0

    def forward(self, g):
        self.calls += 1
        pos = g.positions.detach().requires_grad_(True)
        i, j = torch.triu_indices(g.n_atoms, g.n_atoms, 1)
        same = g.batch[i] == g.batch[j]
        i, j = i[same], j[same]
        r = (pos[i] - pos[j]).norm(dim=-1)
        pair = self.d * ((1 - torch.exp(-self.a * (r - self.r0))) ** 2 - 1)
        energy = torch.zeros(g.n_graphs, dtype=pos.dtype).index_add(0, g.batch[i], pair)
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=self.training)
        return Out(energy, -grad)


def _cluster(n=6, seed=0):
    rng = np.random.default_rng(seed)
    pos = rng.normal(scale=1.2, size=(n, 3))
    return ase.Atoms(numbers=rng.choice([1, 6, 8], size=n), positions=pos)


def test_energy_and_forces_match_the_model_and_finite_differences():
    model = Morse()
    atoms = _cluster()
    atoms.calc = Calculator(model)
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    assert f.shape == (6, 3) and f.dtype == np.float64
    # direct evaluation
    r = atoms.positions
    d = np.linalg.norm(r[:, None] - r[None], axis=-1)[np.triu_indices(6, 1)]
    expect = np.sum(0.5 * ((1 - np.exp(-1.5 * (d - 1.2))) ** 2 - 1))
    assert e == pytest.approx(expect, rel=1e-12)
    # the calculator's forces are -dE/dx of its own energy
    h = 1e-5
    for k in range(3):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[2, k] += h
        minus.positions[2, k] -= h
        plus.calc, minus.calc = Calculator(model), Calculator(model)
        fd = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
        assert f[2, k] == pytest.approx(fd, abs=1e-7)
    # results are cached until the atoms move
    calls = model.calls
    atoms.get_forces()
    assert model.calls == calls
    atoms.positions += 0.01
    atoms.get_forces()
    assert model.calls == calls + 1


def test_normaliser_turns_predictions_into_ev():
    ref = torch.full((119,), float("nan"), dtype=torch.float64)
    ref[[1, 6, 8]] = torch.tensor([-13.0, -1000.0, -2000.0], dtype=torch.float64)
    norm = Normaliser(ref, mean=0.25, std=2.0)
    atoms = _cluster()
    atoms.calc = Calculator(Morse())
    e_raw, f_raw = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = Calculator(Morse(), normaliser=norm)
    e = atoms.get_potential_energy()
    expect = 2.0 * e_raw + 0.25 + sum(float(ref[z]) for z in atoms.numbers)
    assert e == pytest.approx(expect, abs=1e-9)
    np.testing.assert_allclose(atoms.get_forces(), 2.0 * f_raw, rtol=1e-14)


@pytest.mark.filterwarnings("ignore:nnip_scaling.ase.Calculator")  # its cap of 2 can bind (on purpose)
def test_float32_model_and_explicit_edges():
    seen = {}

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, g):
            seen["dtype"], seen["edges"], seen["cutoff"] = g.dtype, g.n_edges, g.cutoff
            return Out(self.w * g.positions.sum().reshape(1), torch.zeros_like(g.positions))

    atoms = _cluster(5)
    atoms.calc = Calculator(Probe())
    atoms.get_potential_energy()
    assert seen == {"dtype": torch.float32, "edges": 0, "cutoff": None}
    atoms.calc = Calculator(Probe(), cutoff=2.0, max_neighbors=2)
    atoms.get_potential_energy()
    assert seen["cutoff"] == 2.0 and 0 < seen["edges"] <= 5 * 2


def test_bad_inputs():
    with pytest.raises(TypeError, match="model"):
        Calculator(3)
    with pytest.raises(TypeError, match="normaliser"):
        Calculator(Morse(), normaliser={"mean": 0})
    with pytest.raises(ValueError, match="max_neighbors"):
        Calculator(Morse(), max_neighbors=3)
    periodic = _cluster()
    periodic.cell, periodic.pbc = [8, 8, 8], True
    periodic.calc = Calculator(Morse())
    with pytest.raises(ValueError, match="periodic"):
        periodic.get_potential_energy()

    class WrongShape(torch.nn.Module):
        def forward(self, g):
            return Out(torch.zeros(2), torch.zeros(g.n_atoms, 3))

    atoms = _cluster()
    atoms.calc = Calculator(WrongShape())
    with pytest.raises(ValueError, match=r"energy must have shape \[1\]"):
        atoms.get_potential_energy()


def _md_energy_error(dt_fs, steps):
    """Max |E_total(t) - E_total(0)| over a Velocity Verlet run of a bound Morse cluster, and the
    range of potential energy it explored."""
    atoms = ase.Atoms("C4", positions=[[0, 0, 0], [1.2, 0, 0], [0, 1.2, 0], [0, 0, 1.2]])
    atoms.calc = Calculator(Morse(d=2.0, a=1.8, r0=1.3))
    rng = np.random.default_rng(0)
    kT = ase.units.kB * 100.0
    atoms.set_momenta(rng.normal(size=(4, 3)) * np.sqrt(kT * atoms.get_masses())[:, None])
    e0 = atoms.get_total_energy()
    total, potential = [], []
    dyn = VelocityVerlet(atoms, timestep=dt_fs * ase.units.fs)
    dyn.attach(lambda: (total.append(atoms.get_total_energy()), potential.append(atoms.get_potential_energy())))
    dyn.run(steps)
    return max(abs(e - e0) for e in total), max(potential) - min(potential), len(total)


def test_velocity_verlet_conserves_energy_with_a_conservative_model():
    err, pe_range, n = _md_energy_error(0.5, 100)
    assert n == 101
    # energy flows between kinetic and potential, but the total is conserved to Verlet's O(dt^2) error
    assert pe_range > 0.05
    assert err < 0.02 * pe_range, (err, pe_range)
    # halving the time step over the same 50 fs cuts the error about fourfold (second-order integrator,
    # forces consistent with the energy): wrong-sign or mis-scaled forces would break this
    err_half, _, _ = _md_energy_error(0.25, 200)
    assert 3.0 < err / err_half < 5.0, (err, err_half)


# ----------------------------------------------------------------------------- discontinuity warnings
def _nn_model(**options):
    from nnip_scaling.models import build_model

    options.setdefault("forces", "conservative")
    torch.manual_seed(0)
    return build_model("unconstrained", 4, 1, cutoff=4.0, max_z=10, dtype=torch.float64, **options).eval()


def test_a_smooth_conservative_model_gives_no_warning():
    import warnings

    atoms = _cluster()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        atoms.calc = Calculator(_nn_model())
        atoms.get_forces()


@pytest.mark.parametrize(
    "options, fix",
    [(dict(forces="direct"), "forces='conservative'"), (dict(aggregation="mean"), "aggregation='soft_mean'")],
)
def test_warns_at_construction_naming_the_fix(options, fix):
    from nnip_scaling.models.smoothness import DiscontinuousEnergyWarning

    with pytest.warns(DiscontinuousEnergyWarning, match=fix):
        Calculator(_nn_model(**options))


def test_warns_once_when_a_neighbour_cap_can_bind():
    import warnings

    from nnip_scaling.models.smoothness import DiscontinuousEnergyWarning

    calc = Calculator(_nn_model(max_neighbors=3))
    small = _cluster(n=4)  # 3 neighbours at most: the cap cannot bind
    small.calc = calc
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small.get_potential_energy()
    big = _cluster(n=6)
    big.calc = calc
    with pytest.warns(DiscontinuousEnergyWarning, match="max_neighbors=None"):
        big.get_potential_energy()
    big.positions += 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        big.get_potential_energy()  # warned once only
