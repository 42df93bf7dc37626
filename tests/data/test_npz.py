"""The package's .npz format: exact round trips, deterministic bytes, and clear errors on bad files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from _data_helpers import make_dataset

from nnip_scaling.data import load_npz, save_npz


def _write_raw(path, **arrays):
    np.savez(path, **arrays)
    return path


def _raw(ds):
    return dict(
        atomic_numbers=ds.atomic_numbers,
        positions=ds.positions,
        forces=ds.forces,
        energy=ds.energy,
        n_atoms=ds.n_atoms,
    )


def test_save_load_round_trip_is_exact(tmp_path):
    ds = make_dataset(30, noise=0.3).split_by_molecule(seed=1)
    ds = type(ds)(**{**{k: getattr(ds, k) for k in ds.__dataclass_fields__}, "metadata": {"seed": 4, "x": [1, 2]}})
    save_npz(ds, tmp_path / "a.npz", extra={"sigma": np.linspace(0, 1, 30)})
    back = load_npz(tmp_path / "a.npz")
    for key in ("atomic_numbers", "positions", "forces", "energy", "n_atoms", "molecule_id", "molecule_split"):
        a, b = getattr(ds, key), getattr(back, key)
        assert a.dtype == b.dtype, key
        np.testing.assert_array_equal(a, b, err_msg=key)
    np.testing.assert_array_equal(back.molecule_smiles, ds.molecule_smiles)
    np.testing.assert_array_equal(back.molecule_source, ds.molecule_source)
    assert back.metadata == {"seed": 4, "x": [1, 2]}
    with np.load(tmp_path / "a.npz", allow_pickle=False) as f:
        np.testing.assert_array_equal(f["sigma"], np.linspace(0, 1, 30))
        assert json.loads(str(f["metadata"]))["seed"] == 4


def test_save_is_byte_deterministic(tmp_path):
    ds = make_dataset(20)
    save_npz(ds, tmp_path / "a.npz")
    save_npz(make_dataset(20), tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    save_npz(make_dataset(20, seed=1), tmp_path / "c.npz")
    assert (tmp_path / "a.npz").read_bytes() != (tmp_path / "c.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.npz") as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_minimal_hand_written_file_loads(tmp_path):
    ds = make_dataset(6)
    path = _write_raw(tmp_path / "m.npz", **_raw(ds))
    back = load_npz(path)
    np.testing.assert_array_equal(back.positions, ds.positions)
    np.testing.assert_array_equal(back.molecule_id, np.arange(6))
    assert back.molecule_source[2] == "m.npz:2" and back.molecule_split is None


def test_truncated_and_corrupt_files_name_the_file(tmp_path):
    save_npz(make_dataset(20), tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="trunc.npz"):
        load_npz(tmp_path / "trunc.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="junk.npz"):
        load_npz(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "missing.npz")


def test_missing_keys_and_mismatched_lengths(tmp_path):
    ds = make_dataset(5)
    raw = _raw(ds)
    del raw["forces"]
    with pytest.raises(ValueError, match=r"nokey.npz: missing key\(s\) \['forces'\]"):
        load_npz(_write_raw(tmp_path / "nokey.npz", **raw))
    raw = _raw(ds)
    raw["forces"] = raw["forces"][:-1]
    with pytest.raises(ValueError, match="short.npz: forces must be"):
        load_npz(_write_raw(tmp_path / "short.npz", **raw))
    raw = _raw(ds)
    raw["n_atoms"] = raw["n_atoms"] + 1
    with pytest.raises(ValueError, match="counts.npz: n_atoms sums"):
        load_npz(_write_raw(tmp_path / "counts.npz", **raw))
    raw = _raw(ds)
    raw["energy"] = raw["energy"][:3]
    with pytest.raises(ValueError, match="energy.npz: energy must"):
        load_npz(_write_raw(tmp_path / "energy.npz", **raw))


def test_object_arrays_are_refused(tmp_path):
    raw = _raw(make_dataset(3))
    raw["molecule_smiles"] = np.array(["a", None, "c"], dtype=object)
    path = _write_raw(tmp_path / "obj.npz", **raw)
    with pytest.raises(ValueError, match="obj.npz.*allow_pickle=False"):
        load_npz(path)


def test_non_finite_labels_raise_with_index_or_are_skipped(tmp_path):
    ds = make_dataset(10, noise=0.1)
    raw = _raw(ds)
    raw["energy"] = raw["energy"].copy()
    raw["energy"][4] = np.nan
    raw["forces"] = raw["forces"].copy()
    raw["forces"][int(ds.n_atoms[:7].sum())] = np.inf  # first atom of configuration 7
    path = _write_raw(tmp_path / "nan.npz", **raw)
    with pytest.raises(ValueError, match="nan.npz: configuration 4: non-finite energy"):
        load_npz(path)
    with pytest.warns(UserWarning, match="skipped 2 of 10"):
        back = load_npz(path, on_bad="skip")
    assert len(back) == 8 and len(back.skipped) == 2
    assert "configuration 7: non-finite forces" in back.skipped[1]
    keep = [0, 1, 2, 3, 5, 6, 8, 9]
    np.testing.assert_array_equal(back.energy, ds.energy[keep])
    np.testing.assert_array_equal(back.positions, ds[keep].positions)
    with pytest.raises(ValueError, match="on_bad"):
        load_npz(path, on_bad="ignore")


def test_bad_atomic_numbers_are_per_configuration(tmp_path):
    raw = _raw(make_dataset(4))
    raw["atomic_numbers"] = raw["atomic_numbers"].copy()
    raw["atomic_numbers"][-1] = 0
    path = _write_raw(tmp_path / "z.npz", **raw)
    with pytest.raises(ValueError, match="z.npz: configuration 3: atomic number"):
        load_npz(path)
    with pytest.warns(UserWarning):
        assert len(load_npz(path, on_bad="skip")) == 3


def test_coincident_atoms_are_caught_at_load_time(tmp_path):
    """Audit defect: coincident atoms passed every loader and failed only inside train() with
    batch-local atom indices; the loader must name the file, the configuration and the atoms."""
    ds = make_dataset(6, dtype=np.float64)
    raw = _raw(ds)
    raw["positions"] = raw["positions"].copy()
    first = int(ds.n_atoms[:2].sum())
    raw["positions"][first + 2] = raw["positions"][first] + 1e-8  # configuration 2, atoms 0 and 2
    path = _write_raw(tmp_path / "overlap.npz", **raw)
    with pytest.raises(ValueError, match=r"overlap.npz: configuration 2: atoms 0 and 2 are coincident"):
        load_npz(path)
    with pytest.warns(UserWarning, match="skipped 1 of 6"):
        back = load_npz(path, on_bad="skip")
    np.testing.assert_array_equal(back.energy, ds.energy[[0, 1, 3, 4, 5]])
    # Close but distinct atoms (1e-5 Å) are a geometry, not an error.
    raw["positions"][first + 2] = raw["positions"][first] + 1e-5
    assert len(load_npz(_write_raw(tmp_path / "close.npz", **raw))) == 6
