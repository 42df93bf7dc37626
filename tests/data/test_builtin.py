"""The shipped GFN2-xTB data set: loads without pickle, documented counts, molecule-disjoint splits,
nested subsets, exact batch round trips, provenance. Needs no optional dependency."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.data import SPLITS, Normaliser, iter_batches, load_dataset
from nnip_scaling.data.io import BUILTIN_FILE

# documented in docs/data.md
N_CONFIGURATIONS = 10_000
N_MOLECULES = 2_500
PER_MOLECULE = 4
SPLIT_MOLECULES = {"train": 2_000, "val": 250, "test": 250}


@pytest.fixture(scope="module")
def ds():
    return load_dataset("builtin")


def test_file_is_package_data_of_about_5_mb_and_loads_without_pickle():
    ref = resources.files("nnip_scaling.data").joinpath(BUILTIN_FILE)
    with resources.as_file(ref) as path:
        assert 3e6 < path.stat().st_size < 7e6
        with np.load(path, allow_pickle=False) as f:
            for key in f.files:
                assert f[key].dtype != object, key


def test_documented_counts(ds):
    assert len(ds) == N_CONFIGURATIONS
    assert ds.n_molecules == N_MOLECULES == len(ds.molecule_smiles)
    assert np.all(np.bincount(ds.molecule_id) == PER_MOLECULE)
    counts = ds.metadata["counts"]
    assert counts == {"configurations": len(ds), "molecules": ds.n_molecules, "atoms": ds.n_atoms_total}
    for name, n_mol in SPLIT_MOLECULES.items():
        part = ds.split(name)
        assert part.n_molecules == n_mol
        assert len(part) == PER_MOLECULE * n_mol
        assert ds.metadata["split"][name]["configurations"] == len(part)
        assert ds.metadata["split"][name]["atoms"] == part.n_atoms_total


def test_splits_do_not_share_molecules(ds):
    parts = {name: load_dataset("builtin", split=name) for name in SPLITS}
    ids = {name: set(p.molecule_id.tolist()) for name, p in parts.items()}
    smiles = {name: set(ds.molecule_smiles[list(i)].tolist()) for name, i in ids.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not ids[a] & ids[b]
        assert not smiles[a] & smiles[b]  # also distinct as chemical species
    assert sum(len(p) for p in parts.values()) == len(ds)
    assert len(set(ds.molecule_smiles.tolist())) == N_MOLECULES


def test_contents_are_what_the_recipe_says(ds):
    assert set(np.unique(ds.atomic_numbers).tolist()) <= {1, 6, 7, 8, 9, 16, 17}
    assert ds.n_atoms.min() >= 2 and ds.n_atoms.max() <= 30
    assert ds.positions.dtype == np.float32 and ds.forces.dtype == np.float32 and ds.energy.dtype == np.float64
    assert np.isfinite(ds.energy).all() and np.isfinite(ds.forces).all()
    force_norm = np.linalg.norm(ds.forces, axis=1)
    assert force_norm.max() <= ds.metadata["configurations"]["max_force_eV_per_angstrom"] + 1e-3
    # off-equilibrium but near it: typical forces of order 1 eV/Å
    assert 0.3 < np.median(force_norm) < 5.0
    # molecules are neutral and closed shell: even electron count
    electrons = np.add.reduceat(ds.atomic_numbers, ds.offsets[:-1])
    assert np.all(electrons % 2 == 0)
    # the sum of forces on a free molecule vanishes (translation invariance of the GFN2-xTB energy)
    net = np.add.reduceat(ds.forces.astype(np.float64), ds.offsets[:-1], axis=0)
    assert np.abs(net).max() < 1e-3
    sources = ds.molecule_source.tolist()
    assert all(s.startswith(("nci:", "g2:")) for s in sources)
    assert sum(s.startswith("g2:") for s in sources) > 50


def test_provenance_metadata(ds):
    meta = ds.metadata
    assert meta["labels"]["method"] == "GFN2-xTB"
    assert "NOT DFT" in meta["description"]
    assert meta["labels"]["tblite_version"] and meta["sources"]["nci"]["rdkit_version"]
    assert meta["sources"]["g2"]["ase_version"]
    assert "first_5K.smi" in meta["sources"]["nci"]["file"]
    assert meta["generator"]["seed"] == 0
    assert meta["generator"]["command"].startswith("nnip-scaling dataset build --n 10000 --seed 0")
    assert meta["units"] == {"positions": "angstrom", "energy": "eV", "forces": "eV/angstrom"}


def test_subsets_of_the_training_split_nest(ds):
    train = ds.split("train")
    prev = None
    for r in (0.01, 0.1, 0.5, 1.0):
        sub = train.subset(r, seed=7)
        key = set(zip(sub.energy.tolist(), sub.molecule_id.tolist()))
        assert len(sub) == round(r * len(train))
        if prev is not None:
            assert prev <= key
        prev = key


def test_batches_round_trip_exactly(ds):
    part = ds[:300]
    g = AtomicGraph.collate(list(iter_batches(part, 64, dtype=torch.float64)))
    assert torch.equal(g.positions, torch.tensor(part.positions, dtype=torch.float64))
    assert torch.equal(g.forces, torch.tensor(part.forces, dtype=torch.float64))
    assert torch.equal(g.energy, torch.tensor(part.energy))
    g32 = AtomicGraph.collate(list(iter_batches(part, 64)))
    assert g32.dtype == torch.float32
    assert torch.equal(g32.positions, torch.tensor(part.positions))
    assert torch.equal(g32.forces, torch.tensor(part.forces))


def test_normalised_training_targets(ds):
    train = ds.split("train")
    norm = Normaliser.fit(train)
    # GFN2-xTB atomic reference energies: H about -14 eV, C about -58 eV (by least squares)
    assert -20 < float(norm.reference[1]) < -8 and -70 < float(norm.reference[6]) < -45
    e = torch.cat([g.energy for g in iter_batches(train, 1000, dtype=torch.float64, normaliser=norm)])
    assert float(e.mean()) == pytest.approx(0.0, abs=1e-9)
    assert float(e.std()) == pytest.approx(1.0, abs=1e-9)
    # referencing removes almost all of the spread of total energies
    assert norm.std < 0.01 * float(np.std(train.energy))


def test_load_dataset_argument_errors():
    with pytest.raises(ValueError, match="name must be 'builtin'"):
        load_dataset("omol25")
    with pytest.raises(ValueError, match="split must be None or one of"):
        load_dataset("builtin", split="training")
