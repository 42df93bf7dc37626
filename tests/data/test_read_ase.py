"""read_ase: extxyz / ASE trajectory / ASE database round trips and bad-input handling."""

from __future__ import annotations

import numpy as np
import pytest
from _data_helpers import make_dataset

ase = pytest.importorskip("ase")
import ase.db  # noqa: E402
import ase.io  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402

from nnip_scaling.data import read_ase  # noqa: E402


def _atoms_list(ds, *, custom=False):
    out = []
    for c in ds:
        a = ase.Atoms(numbers=c.atomic_numbers, positions=c.positions.astype(np.float64))
        if custom:
            a.info["REF_energy"] = c.energy
            a.arrays["REF_forces"] = c.forces.astype(np.float64)
        else:
            a.calc = SinglePointCalculator(a, energy=c.energy, forces=c.forces.astype(np.float64))
        out.append(a)
    return out


def _assert_same(ds, back):
    assert len(back) == len(ds)
    np.testing.assert_array_equal(back.atomic_numbers, ds.atomic_numbers)
    np.testing.assert_allclose(back.positions, ds.positions, rtol=0, atol=1e-7)
    np.testing.assert_allclose(back.forces, ds.forces, rtol=0, atol=1e-7)
    np.testing.assert_allclose(back.energy, ds.energy, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(back.n_atoms, ds.n_atoms)


# ASE trajectories store labels only through the calculator, so no custom keys for .traj
@pytest.mark.parametrize("suffix, custom", [(".extxyz", False), (".extxyz", True), (".traj", False)])
def test_file_round_trips(tmp_path, suffix, custom):
    ds = make_dataset(8, noise=0.2)
    path = tmp_path / f"x{suffix}"
    ase.io.write(path, _atoms_list(ds, custom=custom))
    keys = ("REF_energy", "REF_forces") if custom else ("energy", "forces")
    back = read_ase(path, *keys)
    _assert_same(ds, back)
    assert back.molecule_source[3] == f"x{suffix}:3"
    if suffix == ".traj":  # binary, so exact
        np.testing.assert_array_equal(back.positions, ds.positions.astype(np.float64))
        np.testing.assert_array_equal(back.energy, ds.energy)


def test_database_round_trip_standard_and_custom_keys(tmp_path):
    ds = make_dataset(6, noise=0.2)
    db = ase.db.connect(tmp_path / "a.db")
    for a in _atoms_list(ds):
        db.write(a)
    _assert_same(ds, read_ase(tmp_path / "a.db"))
    db2 = ase.db.connect(tmp_path / "b.db")
    for c in ds:
        a = ase.Atoms(numbers=c.atomic_numbers, positions=c.positions.astype(np.float64))
        db2.write(a, REF_energy=c.energy, data={"REF_forces": c.forces.astype(np.float64)})
    _assert_same(ds, read_ase(tmp_path / "b.db", "REF_energy", "REF_forces"))
    with pytest.raises(ValueError, match="b.db: configuration 0: no energy under key 'energy'"):
        read_ase(tmp_path / "b.db")


def test_missing_keys_and_wrong_shapes(tmp_path):
    ds = make_dataset(5, noise=0.2)
    atoms = _atoms_list(ds, custom=True)
    del atoms[2].info["REF_energy"]
    atoms[3].arrays["REF_forces"] = np.zeros((ds.n_atoms[3], 3))
    ase.io.write(tmp_path / "m.extxyz", atoms)
    with pytest.raises(ValueError, match="m.extxyz: configuration 2: no energy under key 'REF_energy'"):
        read_ase(tmp_path / "m.extxyz", "REF_energy", "REF_forces")
    with pytest.raises(ValueError, match="configuration 0: no forces under key 'forces'"):
        read_ase(tmp_path / "m.extxyz", "REF_energy", "forces")
    with pytest.warns(UserWarning, match="skipped 1 of 5"):
        back = read_ase(tmp_path / "m.extxyz", "REF_energy", "REF_forces", on_bad="skip")
    assert len(back) == 4 and "configuration 2" in back.skipped[0]
    assert list(back.molecule_source) == ["m.extxyz:0", "m.extxyz:1", "m.extxyz:3", "m.extxyz:4"]


def test_non_finite_and_periodic_configurations(tmp_path):
    ds = make_dataset(4, noise=0.2)
    atoms = _atoms_list(ds, custom=True)
    atoms[1].info["REF_energy"] = float("nan")
    atoms[2].cell = [10, 10, 10]
    atoms[2].pbc = True
    ase.io.write(tmp_path / "p.extxyz", atoms)
    with pytest.raises(ValueError, match="p.extxyz: configuration 1: non-finite"):
        read_ase(tmp_path / "p.extxyz", "REF_energy", "REF_forces")
    with pytest.warns(UserWarning, match="skipped 2 of 4"):
        back = read_ase(tmp_path / "p.extxyz", "REF_energy", "REF_forces", on_bad="skip")
    assert "periodic" in back.skipped[1]
    np.testing.assert_allclose(back.energy, ds.energy[[0, 3]], rtol=1e-12)


def test_truncated_extxyz(tmp_path):
    ds = make_dataset(6, noise=0.2)
    ase.io.write(tmp_path / "t.extxyz", _atoms_list(ds))
    lines = (tmp_path / "t.extxyz").read_text().splitlines(keepends=True)
    cut = sum(int(n) + 2 for n in ds.n_atoms[:4]) + 4  # inside configuration 4
    (tmp_path / "cut.extxyz").write_text("".join(lines[:cut]))
    with pytest.raises(ValueError, match="cut.extxyz: configuration 4: unreadable"):
        read_ase(tmp_path / "cut.extxyz")
    with pytest.warns(UserWarning, match="skipped 1"):
        back = read_ase(tmp_path / "cut.extxyz", on_bad="skip")
    assert len(back) == 4
    np.testing.assert_allclose(back.energy, ds.energy[:4], rtol=1e-12)


def test_corrupt_files_name_the_file(tmp_path):
    (tmp_path / "bad.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="bad.db"):
        read_ase(tmp_path / "bad.db")
    (tmp_path / "bad.traj").write_bytes(b"\x00\x01garbage" * 50)
    with pytest.raises(ValueError, match="bad.traj"):
        read_ase(tmp_path / "bad.traj")
    (tmp_path / "x.unknown").write_text("")
    with pytest.raises(ValueError, match="format"):
        read_ase(tmp_path / "x.unknown")
    with pytest.raises(FileNotFoundError):
        read_ase(tmp_path / "nope.extxyz")


@pytest.mark.parametrize("count", [10**7, 999999999999, -3])
def test_absurd_count_line_is_refused_before_ase_reads_it(tmp_path, count, monkeypatch):
    """Audit defect: a 12-line .xyz whose count line says 999999999999 made ASE read for minutes
    (it trusts the count). The file must be refused without handing it to ASE at all."""
    text = f"{count}\ncomment\n" + "".join(f"H {i}.0 0.0 0.0\n" for i in range(10))
    (tmp_path / "huge.xyz").write_text(text)
    real_iread = ase.io.iread

    def guarded(source, *args, **kwargs):
        if not hasattr(source, "read"):
            assert "huge" not in str(source), "the bad file was handed to ASE"
        return real_iread(source, *args, **kwargs)

    monkeypatch.setattr(ase.io, "iread", guarded)
    with pytest.raises(ValueError, match=r"huge.xyz: configuration 0: unreadable .* the count line says"):
        read_ase(tmp_path / "huge.xyz")
    # After good frames, the bad tail is one skipped entry (or the error with on_bad='raise').
    ds = make_dataset(3, noise=0.2)
    ase.io.write(tmp_path / "good.extxyz", _atoms_list(ds))
    (tmp_path / "tail.extxyz").write_text((tmp_path / "good.extxyz").read_text() + text)
    with pytest.raises(ValueError, match="tail.extxyz: configuration 3: unreadable"):
        read_ase(tmp_path / "tail.extxyz")
    with pytest.warns(UserWarning, match="skipped 1 of 4"):
        back = read_ase(tmp_path / "tail.extxyz", on_bad="skip")
    np.testing.assert_allclose(back.energy, ds.energy, rtol=1e-12)


def test_coincident_atoms_named_at_load_time(tmp_path):
    ds = make_dataset(4, noise=0.2)
    atoms = _atoms_list(ds)
    pos = atoms[1].positions.copy()
    pos[1] = pos[0]
    atoms[1].positions = pos
    ase.io.write(tmp_path / "c.extxyz", atoms)
    with pytest.raises(ValueError, match="c.extxyz: configuration 1: atoms 0 and 1 are coincident"):
        read_ase(tmp_path / "c.extxyz")
    with pytest.warns(UserWarning, match="skipped 1 of 4"):
        back = read_ase(tmp_path / "c.extxyz", on_bad="skip")
    assert list(back.molecule_source) == ["c.extxyz:0", "c.extxyz:2", "c.extxyz:3"]
