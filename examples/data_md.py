"""Train a small model on the built-in GFN2-xTB data set, then run molecular dynamics with it in ASE.

Steps: load the built-in set (split by molecule), fit the energy reference and normalisation on the
training split (paper app. D), train a small conservative model for a few hundred steps, compare it
with the labels on validation molecules, and run 100 steps of Velocity Verlet on a test molecule with
``nnip_scaling.ase.Calculator``, printing the total-energy drift.

Needs ASE (``pip install 'nnip_scaling[data]'``). ``NNIP_FAST=1`` trains for a few steps only.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from nnip_scaling.data import Normaliser, iter_batches, load_dataset
from nnip_scaling.models import build_model

FAST = os.environ.get("NNIP_FAST") == "1"


def main() -> None:
    torch.manual_seed(0)
    data = load_dataset("builtin")
    train, val, test = data.split("train"), data.split("val"), data.split("test")
    print(f"built-in set: {len(data)} configurations of {data.n_molecules} molecules "
          f"(train {len(train)}, val {len(val)}, test {len(test)}); labels: {data.metadata['labels']['method']}")
    norm = Normaliser.fit(train)
    print(f"energy reference fitted on train: mu = {norm.mean:.3f} eV, sigma = {norm.std:.3f} eV; "
          f"eps_H = {float(norm.reference[1]):.2f} eV, eps_C = {float(norm.reference[6]):.2f} eV")

    # a small model whose forces are -dE/dx of a smooth energy, so that MD conserves energy: conservative
    # models are built smooth by default (aggregation="soft_mean", no neighbour cap; docs/models/smoothness.md)
    width, depth = (8, 1) if FAST else (16, 2)
    model = build_model("unconstrained", width=width, depth=depth, forces="conservative", max_z=17)
    cutoff, cap = model.config.cutoff, model.config.max_neighbors  # 6 Å, None
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = 4 if FAST else 300
    subset = train.subset(0.05 if FAST else 1.0, seed=0)
    gen = torch.Generator().manual_seed(0)
    step, t0 = 0, time.perf_counter()
    while step < steps:
        for g in iter_batches(subset, 16, shuffle=True, generator=gen, normaliser=norm, drop_last=True):
            out = model(g.with_edges(cutoff, cap))
            loss = torch.mean((out.energy - g.energy) ** 2) + torch.mean((out.forces - g.forces) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % max(1, steps // 5) == 0:
                print(f"  step {step:4d}  loss (normalised units) {float(loss.detach()):.4f}")
            if step == steps:
                break
    print(f"trained {steps} steps in {time.perf_counter() - t0:.1f} s")

    # validation error in physical units
    model.eval()
    err_e, err_f, n_at = [], [], []
    for g in iter_batches(val.subset(0.02 if FAST else 0.2, seed=0), 32, dtype=torch.float32):
        out = model(g.with_edges(cutoff, cap))
        e = norm.energy_to_ev(out.energy.detach().double(), g.atomic_numbers, g.batch)
        err_e.append((e - g.energy.double()).abs() / g.n_atoms_per_graph)
        err_f.append((norm.forces_to_ev(out.forces.detach()) - g.forces).abs().mean(dim=1))
    print(f"validation MAE: energy {float(torch.cat(err_e).mean()) * 1000:.1f} meV/atom, "
          f"forces {float(torch.cat(err_f).mean()):.3f} eV/Å")

    # molecular dynamics on a test molecule
    try:
        import ase
        import ase.units
        from ase.md.verlet import VelocityVerlet

        from nnip_scaling.ase import Calculator
    except ImportError:
        print("ASE is not installed: skipping the molecular dynamics (pip install 'nnip_scaling[data]')")
        return
    # the smallest test molecule with at least 6 atoms (cheap to integrate)
    c = min((x for x in test if x.n_atoms >= 6), key=lambda x: x.n_atoms)
    atoms = ase.Atoms(numbers=c.atomic_numbers, positions=c.positions.astype(np.float64))
    atoms.calc = Calculator(model, normaliser=norm, dtype=torch.float64)  # the model builds its own edges
    model.double()
    rng = np.random.default_rng(0)
    kT = ase.units.kB * 300.0
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * np.sqrt(kT * atoms.get_masses())[:, None])
    e0 = atoms.get_total_energy()
    total, potential = [], []
    dyn = VelocityVerlet(atoms, timestep=0.25 * ase.units.fs)
    dyn.attach(lambda: (total.append(atoms.get_total_energy()), potential.append(atoms.get_potential_energy())))
    t0 = time.perf_counter()
    dyn.run(100)
    smiles = data.molecule_smiles[c.molecule_id]
    print(f"Velocity Verlet, 100 steps of 0.25 fs at 300 K on {smiles} ({len(atoms)} atoms), "
          f"{time.perf_counter() - t0:.1f} s")
    print(f"  potential energy varied over {(max(potential) - min(potential)) * 1000:.3f} meV; total energy "
          f"{e0:.4f} eV drifted by {(total[-1] - e0) * 1000:+.4f} meV "
          f"(max |E(t) - E(0)| = {max(abs(e - e0) for e in total) * 1000:.4f} meV)")

if __name__ == "__main__":
    main()
