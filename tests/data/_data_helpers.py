"""Shared helpers for the data tests: small synthetic labelled data sets with planted references."""

from __future__ import annotations

import numpy as np

from nnip_scaling.data import MoleculeDataset

PLANTED = {1: -13.6, 6: -1030.0, 7: -1480.0, 8: -2040.0}


def make_dataset(
    n_configs: int = 40, *, n_molecules: int = 10, seed: int = 0, noise: float = 0.0, dtype=np.float32
) -> MoleculeDataset:
    """Configurations of ``n_molecules`` random molecules (3-9 atoms of H/C/N/O), energies =
    planted per-element references + ``noise`` * N(0, 1), random forces."""
    rng = np.random.default_rng(seed)
    elements = np.array(sorted(PLANTED))
    formulas = [rng.choice(elements, size=rng.integers(3, 10)) for _ in range(n_molecules)]
    mid = np.sort(rng.integers(0, n_molecules, size=n_configs))
    zs = [formulas[m] for m in mid]
    counts = np.array([len(z) for z in zs])
    z = np.concatenate(zs)
    pos = rng.normal(scale=1.5, size=(len(z), 3)).astype(dtype)
    frc = rng.normal(size=(len(z), 3)).astype(dtype)
    energy = np.array([sum(PLANTED[int(a)] for a in zc) for zc in zs]) + noise * rng.standard_normal(n_configs)
    return MoleculeDataset(
        atomic_numbers=z,
        positions=pos,
        energy=energy,
        forces=frc,
        n_atoms=counts,
        molecule_id=mid,
        molecule_smiles=np.array([f"mol{i}" for i in range(n_molecules)]),
        molecule_source=np.array([f"test:{i}" for i in range(n_molecules)]),
    )
