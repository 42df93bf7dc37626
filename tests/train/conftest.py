"""Fixtures for the training tests: a small, exactly labelled data set built from the built-in
probe geometries (no dependence on the shipped GFN2-xTB file), and the shipped one where a test needs it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnip_scaling.data import MoleculeDataset, builtin_molecules

# Morse pair potential V(r) = D (1 - exp(-a (r - r0)))^2 - D, r0 = sum of covalent radii (Å).
_RADIUS = {1: 0.31, 6: 0.76, 7: 0.71, 8: 0.66, 9: 0.57, 14: 1.11, 15: 1.07, 16: 1.05, 17: 1.02}


def morse_labels(z: np.ndarray, pos: np.ndarray) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/Å) of one configuration under a Morse pair potential (float64, exact)."""
    r = torch.tensor(pos, dtype=torch.float64, requires_grad=True)
    rad = torch.tensor([_RADIUS.get(int(a), 0.8) for a in z], dtype=torch.float64)
    i, j = torch.triu_indices(len(z), len(z), 1)
    d = (r[i] - r[j]).norm(dim=-1)
    r0 = rad[i] + rad[j]
    e = (1.0 - torch.exp(-1.5 * (d - r0))).pow(2).sub(1.0).mul(2.0).sum() - 3.0 * len(z)
    (g,) = torch.autograd.grad(e, r)
    return float(e.detach()), (-g).numpy()


def toy_dataset(n_per_molecule: int = 3, *, n_molecules: int = 60, sigma: float = 0.08, seed: int = 0,
                max_atoms: int = 12) -> MoleculeDataset:
    """``n_per_molecule`` displaced copies of each of the first built-in molecules with <= ``max_atoms``
    atoms, Morse labels, split 80/20/0 by molecule."""
    rng = np.random.default_rng(seed)
    mols = [m for m in builtin_molecules() if 2 <= len(m.atomic_numbers) <= max_atoms][:n_molecules]
    zs, ps, fs, es, counts, mids = [], [], [], [], [], []
    for k, m in enumerate(mols):
        z = np.asarray(m.atomic_numbers, dtype=np.int64)
        for _ in range(n_per_molecule):
            pos = np.asarray(m.positions, dtype=np.float64) + sigma * rng.standard_normal((len(z), 3))
            e, f = morse_labels(z, pos)
            zs.append(z), ps.append(pos), fs.append(f), es.append(e), counts.append(len(z)), mids.append(k)
    ds = MoleculeDataset(
        atomic_numbers=np.concatenate(zs), positions=np.concatenate(ps).astype(np.float32),
        energy=np.array(es), forces=np.concatenate(fs).astype(np.float32), n_atoms=np.array(counts),
        molecule_id=np.array(mids), molecule_smiles=np.array([""] * len(mols)),
        molecule_source=np.array([f"toy:{i}" for i in range(len(mols))]),
    )
    return ds.split_by_molecule((0.8, 0.2, 0.0), seed=seed)


@pytest.fixture(scope="session")
def toy() -> tuple[MoleculeDataset, MoleculeDataset]:
    ds = toy_dataset()
    return ds.split("train"), ds.split("val")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models train fastest (and most reproducibly) on one intra-op thread."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
