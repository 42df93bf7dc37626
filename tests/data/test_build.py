"""The GFN2-xTB generator: molecule filter, determinism across worker counts, reproduction of shipped
configurations, and an independent finite-difference check of the shipped forces."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytest.importorskip("tblite")
pytest.importorskip("ase")

from nnip_scaling.cli import main  # noqa: E402
from nnip_scaling.data import load_dataset, load_npz  # noqa: E402
from nnip_scaling.data.build import (  # noqa: E402
    BOHR_ANGSTROM,
    ELEMENTS,
    HARTREE_EV,
    MAX_ATOMS,
    BuildFailure,
    SourceMolecule,
    _work,
    build_dataset,
    candidate_molecules,
    generate,
    gfn2_energy_forces,
    label_molecule,
    source_from_key,
)


@pytest.fixture(scope="module")
def builtin():
    return load_dataset("builtin")


def test_constants_agree_with_ase():
    import ase.units

    # ASE uses CODATA 2014 by default; agreement to 1e-7 relative checks the conversions' magnitude
    assert HARTREE_EV == pytest.approx(ase.units.Hartree, rel=1e-7)
    assert BOHR_ANGSTROM == pytest.approx(ase.units.Bohr, rel=1e-7)


def test_candidates_obey_the_filter():
    from rdkit import Chem

    cands = candidate_molecules()
    keys = [c.key for c in cands]
    assert len(set(keys)) == len(keys)
    nci = [c for c in cands if c.key.startswith("nci:")]
    g2 = [c for c in cands if c.key.startswith("g2:")]
    assert 2500 <= len(nci) <= 2700 and 60 <= len(g2) <= 110
    for c in nci[::25]:
        assert c.atomic_numbers is None and c.positions is None
        mol = Chem.AddHs(Chem.MolFromSmiles(c.smiles))
        assert Chem.GetFormalCharge(mol) == 0 and len(Chem.GetMolFrags(mol)) == 1, c
        assert {a.GetAtomicNum() for a in mol.GetAtoms()} <= set(ELEMENTS), c
        assert 2 <= mol.GetNumAtoms() <= MAX_ATOMS, c
        assert sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms()) == 0, c
    for c in g2:
        z = np.array(c.atomic_numbers)
        assert set(z.tolist()) <= set(ELEMENTS) and 2 <= len(z) <= MAX_ATOMS and z.sum() % 2 == 0, c
        assert np.array(c.positions).shape == (len(z), 3)
    # well-known members: benzene from NCI or g2 (once), water from g2, no open-shell g2 radicals
    flat = {Chem.MolToSmiles(Chem.MolFromSmiles(c.smiles), isomericSmiles=False) for c in nci}
    assert "g2:H2O" in keys and "g2:OH" not in keys and "g2:CH3" not in keys
    assert ("c1ccccc1" in flat) != ("g2:C6H6" in keys)


def test_failures_are_reported_not_fatal():
    bad = SourceMolecule("nci:bogus", "C1CC(")
    out = _work((bad, 0, 2, (0.005, 0.05), 1.0))
    assert isinstance(out, BuildFailure) and out.key == "nci:bogus" and "SMILES" in out.reason
    with pytest.raises(ValueError, match="nci:"):
        source_from_key("zz:1")
    with pytest.raises(ValueError, match="SMILES"):
        source_from_key("nci:12")
    with pytest.raises(ValueError, match="no molecule"):
        source_from_key("g2:NotAMolecule")


def test_label_molecule_prefix_property_and_units():
    water = source_from_key("g2:H2O")
    a = label_molecule(water, seed=3, n_configs=2)
    b = label_molecule(water, seed=3, n_configs=3)
    np.testing.assert_array_equal(a.positions, b.positions[:2])
    np.testing.assert_array_equal(a.sigma, b.sigma[:2])
    np.testing.assert_allclose(a.energy, b.energy[:2], rtol=0, atol=1e-8)
    assert a.positions.dtype == np.float32 and a.forces.dtype == np.float32 and a.energy.dtype == np.float64
    assert np.all((0.005 <= b.sigma) & (b.sigma <= 0.05))
    # GFN2-xTB total energy of water is about -5.07 Hartree
    assert a.energy[0] / HARTREE_EV == pytest.approx(-5.07, abs=0.03)
    c = label_molecule(water, seed=4, n_configs=1)
    assert not np.array_equal(c.positions[0], a.positions[0])


def test_build_is_byte_identical_for_any_worker_count(tmp_path, capsys):
    paths = []
    for workers in (1, 2):
        path = tmp_path / f"w{workers}.npz"
        assert main(["dataset", "build", "--n", "5", "--per-molecule", "2", "--seed", "11",
                     "--workers", str(workers), "--out", str(path), "--quiet"]) == 0
        paths.append(path)
    assert "wrote" in capsys.readouterr().out
    assert paths[0].read_bytes() == paths[1].read_bytes()
    ds = load_npz(paths[0])
    assert len(ds) == 5 and ds.n_molecules == 3
    assert list(np.bincount(ds.molecule_id)) == [2, 2, 1]
    assert ds.metadata["generator"]["seed"] == 11
    assert ds.metadata["labels"]["method"] == "GFN2-xTB"


def test_build_argument_errors():
    with pytest.raises(ValueError, match="n must be"):
        build_dataset(0)
    with pytest.raises(ValueError, match="workers"):
        build_dataset(5, workers=0)
    with pytest.raises(ValueError, match="raise per_molecule"):
        build_dataset(10**6, per_molecule=1)


def _pick_molecules(ds, n_nci=2, n_g2=1):
    """Smallest shipped NCI and g2 molecules (cheap to regenerate)."""
    sizes = {}
    for mid, n in zip(ds.molecule_id, ds.n_atoms):
        sizes[int(mid)] = int(n)
    by_size = sorted(sizes, key=lambda m: (sizes[m], m))
    nci = [m for m in by_size if ds.molecule_source[m].startswith("nci:")][:n_nci]
    g2 = [m for m in by_size if ds.molecule_source[m].startswith("g2:") and sizes[m] >= 3][:n_g2]
    return nci + g2


def test_generator_reproduces_shipped_configurations(builtin):
    meta = builtin.metadata
    seed, per_molecule = meta["generator"]["seed"], meta["configurations"]["per_molecule"]
    picked = _pick_molecules(builtin)
    if version("rdkit") != meta["sources"]["nci"]["rdkit_version"]:
        # ETKDG conformers are only reproducible with the RDKit release that made them
        picked = [m for m in picked if builtin.molecule_source[m].startswith("g2:")]
    assert picked
    sources = [source_from_key(str(builtin.molecule_source[m]), str(builtin.molecule_smiles[m])) for m in picked]
    with generate(sources, seed=seed, n_configs=per_molecule, workers=1) as results:
        regenerated = list(results)
    for m, res in zip(picked, regenerated):
        assert not isinstance(res, BuildFailure), res
        shipped = builtin[np.flatnonzero(builtin.molecule_id == m)]
        k = len(shipped)
        np.testing.assert_array_equal(np.tile(res.atomic_numbers, k), shipped.atomic_numbers)
        # positions are a deterministic function of (seed, key): bit for bit
        np.testing.assert_array_equal(res.positions[:k].reshape(-1, 3), shipped.positions)
        # labels: same geometry, same method; equal up to SCF convergence (bitwise on the same machine)
        np.testing.assert_allclose(res.energy[:k], shipped.energy, rtol=0, atol=1e-6)
        np.testing.assert_allclose(res.forces[:k].reshape(-1, 3), shipped.forces, rtol=0, atol=1e-5)


def test_shipped_forces_match_finite_differences_of_the_gfn2_energy(builtin):
    """Independent physics check: F = -dE/dx with E from tblite at displaced positions (in eV and Å)."""
    rng = np.random.default_rng(0)
    h = 1e-3  # Å
    picked = _pick_molecules(builtin, n_nci=2, n_g2=1)
    checked = 0
    for m in picked:
        i = int(np.flatnonzero(builtin.molecule_id == m)[0])
        c = builtin[i]
        x = c.positions.astype(np.float64)
        for atom, axis in zip(rng.integers(0, c.n_atoms, 4), rng.integers(0, 3, 4)):
            plus, minus = x.copy(), x.copy()
            plus[atom, axis] += h
            minus[atom, axis] -= h
            e_plus, _ = gfn2_energy_forces(c.atomic_numbers, plus, accuracy=0.01)
            e_minus, _ = gfn2_energy_forces(c.atomic_numbers, minus, accuracy=0.01)
            fd = -(e_plus - e_minus) / (2 * h)
            assert c.forces[atom, axis] == pytest.approx(fd, abs=1e-3), (builtin.molecule_source[m], atom, axis)
            checked += 1
        # and the stored energy is the GFN2-xTB energy of the stored positions
        e, _ = gfn2_energy_forces(c.atomic_numbers, x)
        assert e == pytest.approx(c.energy, abs=1e-6)
    assert checked == 12
