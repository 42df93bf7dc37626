"""Property tests: generated labelled data sets survive the loaders' round trips.

``save_npz`` -> ``load_npz`` is exact (every array, dtype and table); ``ase.io.write`` (extended XYZ)
-> ``read_ase`` reproduces atomic numbers exactly and coordinates, forces and energies to the
precision ASE writes (coordinates and forces with 8 decimals, energies in full).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnip_scaling.data import MoleculeDataset, load_npz, read_ase, save_npz
from nnip_scaling.testing.strategies import molecules

_SETTINGS = settings(max_examples=15, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@st.composite
def datasets(draw, *, dtype=np.float64, max_configs=6):
    """A labelled data set of 1..max_configs generated molecules, energies and forces."""
    mols = draw(st.lists(molecules(max_atoms=12), min_size=1, max_size=max_configs))
    finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
    energy = np.array(draw(st.lists(finite, min_size=len(mols), max_size=len(mols))), dtype=np.float64)
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    counts = np.array([len(z) for z, _ in mols], dtype=np.int64)
    n_molecules = draw(st.integers(1, len(mols)))
    return MoleculeDataset(
        atomic_numbers=np.concatenate([z for z, _ in mols]),
        positions=np.concatenate([r for _, r in mols]).astype(dtype),
        energy=energy,
        forces=rng.normal(scale=3.0, size=(int(counts.sum()), 3)).astype(dtype),
        n_atoms=counts,
        molecule_id=np.sort(rng.integers(0, n_molecules, size=len(mols))),
        molecule_smiles=np.array([f"m{i}" for i in range(n_molecules)]),
        molecule_source=np.array([f"gen:{i}" for i in range(n_molecules)]),
        molecule_split=rng.integers(0, 3, size=n_molecules).astype(np.int8) if draw(st.booleans()) else None,
        metadata={"seed": seed, "note": draw(st.text(max_size=20))},
    )


@_SETTINGS
@given(ds=datasets(dtype=np.float32) | datasets(dtype=np.float64))
def test_npz_round_trip_is_exact(tmp_path, ds):
    path = tmp_path / "gen.npz"
    save_npz(ds, path)
    back = load_npz(path)
    for name in ("atomic_numbers", "positions", "forces", "energy", "n_atoms", "molecule_id",
                 "molecule_smiles", "molecule_source"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ds, name), err_msg=name)
    assert back.positions.dtype == ds.positions.dtype
    if ds.molecule_split is None:
        assert back.molecule_split is None
    else:
        np.testing.assert_array_equal(back.molecule_split, ds.molecule_split)
    assert dict(back.metadata) == dict(ds.metadata)
    # and the bytes are a function of the data alone
    save_npz(back, tmp_path / "again.npz")
    assert (tmp_path / "again.npz").read_bytes() == path.read_bytes()


@_SETTINGS
@given(ds=datasets())
def test_extxyz_round_trip(tmp_path, ds):
    ase = pytest.importorskip("ase")
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    for c in ds:
        atoms = ase.Atoms(numbers=c.atomic_numbers, positions=c.positions)
        atoms.calc = SinglePointCalculator(atoms, energy=c.energy, forces=c.forces)
        frames.append(atoms)
    path = tmp_path / "gen.extxyz"
    ase.io.write(path, frames)
    back = read_ase(path)
    assert len(back) == len(ds) and not back.skipped
    np.testing.assert_array_equal(back.atomic_numbers, ds.atomic_numbers)
    np.testing.assert_array_equal(back.n_atoms, ds.n_atoms)
    np.testing.assert_allclose(back.positions, ds.positions, rtol=0, atol=1e-8)
    np.testing.assert_allclose(back.forces, ds.forces, rtol=0, atol=1e-8)
    np.testing.assert_allclose(back.energy, ds.energy, rtol=1e-12, atol=1e-12)
    assert list(back.molecule_source) == [f"gen.extxyz:{i}" for i in range(len(ds))]
