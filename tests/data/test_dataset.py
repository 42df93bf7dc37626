"""MoleculeDataset: construction checks, indexing, nested subsets, splits by molecule, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _data_helpers import make_dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from nnip_scaling import AtomicGraph
from nnip_scaling.data import SPLITS, MoleculeDataset, Normaliser, iter_batches


def test_indexing_returns_the_right_slices(small_dataset):
    ds = small_dataset
    off = np.concatenate([[0], np.cumsum(ds.n_atoms)])
    for i in (0, 7, len(ds) - 1, -1):
        c = ds[i]
        j = i % len(ds)
        np.testing.assert_array_equal(c.positions, ds.positions[off[j] : off[j + 1]])
        np.testing.assert_array_equal(c.forces, ds.forces[off[j] : off[j + 1]])
        np.testing.assert_array_equal(c.atomic_numbers, ds.atomic_numbers[off[j] : off[j + 1]])
        assert c.energy == ds.energy[j] and c.molecule_id == ds.molecule_id[j]
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]
    assert len(list(ds)) == len(ds)


def test_slice_array_and_mask_indexing_agree(small_dataset):
    ds = small_dataset
    a = ds[3:9]
    b = ds[np.arange(3, 9)]
    mask = np.zeros(len(ds), bool)
    mask[3:9] = True
    c = ds[mask]
    for other in (b, c):
        np.testing.assert_array_equal(a.positions, other.positions)
        np.testing.assert_array_equal(a.energy, other.energy)
        np.testing.assert_array_equal(a.molecule_id, other.molecule_id)
    assert len(a) == 6 and a.n_atoms_total == int(ds.n_atoms[3:9].sum())
    # reordering keeps each configuration's atoms together
    r = ds[[5, 2]]
    np.testing.assert_array_equal(r[0].positions, ds[5].positions)
    np.testing.assert_array_equal(r[1].forces, ds[2].forces)
    with pytest.raises(TypeError):
        ds["x"]


def test_arrays_are_read_only_and_inputs_untouched():
    z = np.array([1, 8, 1])
    pos = np.zeros((3, 3), np.float32)
    ds = MoleculeDataset(z, pos, np.array([1.0]), pos.copy(), np.array([3]), np.array([0]), np.array(["O"]), np.array(["x"]))
    assert pos.flags.writeable
    with pytest.raises(ValueError):
        ds.positions[0, 0] = 1.0


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(n_atoms=np.array([2, 2])), "n_atoms sums"),
        (dict(energy=np.array([1.0, 2.0, 3.0])), "energy"),
        (dict(forces=np.zeros((2, 3))), "forces"),
        (dict(molecule_id=np.array([0, 5])), "molecule_id"),
        (dict(atomic_numbers=np.array([1, 200, 1])), "atomic_numbers"),
        (dict(energy=np.array([np.nan, 1.0])), "configuration 0 has non-finite"),
        (dict(molecule_split=np.array([7, 0])), "molecule_split"),
        (dict(n_atoms=np.array([3, 0])), "at least one atom"),
    ],
)
def test_bad_construction_is_named(change, match):
    kwargs = dict(
        atomic_numbers=np.array([1, 8, 1]),
        positions=np.zeros((3, 3)),
        energy=np.array([1.0, 2.0]),
        forces=np.zeros((3, 3)),
        n_atoms=np.array([2, 1]),
        molecule_id=np.array([0, 1]),
        molecule_smiles=np.array(["a", "b"]),
        molecule_source=np.array(["a", "b"]),
    )
    kwargs["n_atoms"] = np.array([1, 2])
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        MoleculeDataset(**kwargs)


@settings(max_examples=25, deadline=None)
@given(
    r1=st.floats(0.01, 1.0),
    r2=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**31),
    n=st.integers(1, 60),
)
def test_subsets_nest_and_have_the_requested_size(r1, r2, seed, n):
    ds = make_dataset(n, n_molecules=5)
    lo, hi = sorted((r1, r2))
    small, big = ds.subset(lo, seed), ds.subset(hi, seed)
    assert len(small) == max(1, round(lo * n)) and len(big) == max(1, round(hi * n))
    # nested: every configuration of the small subset is in the big one (compare content)
    key = lambda d: {(float(c.energy), c.positions.tobytes()) for c in d}  # noqa: E731
    assert key(small) <= key(big)
    assert ds.subset(1.0, seed).n_atoms_total == ds.n_atoms_total


def test_subset_depends_on_seed_and_rejects_bad_fractions(small_dataset):
    a = small_dataset.subset(0.5, 0)
    b = small_dataset.subset(0.5, 1)
    assert not np.array_equal(a.energy, b.energy)
    np.testing.assert_array_equal(a.energy, small_dataset.subset(0.5, seed=0).energy)
    for bad in (0.0, -0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="fraction"):
            small_dataset.subset(bad, 0)
    with pytest.raises(ValueError, match="seed"):
        small_dataset.subset(0.5, -1)


def test_split_by_molecule_partitions_molecules(small_dataset):
    with pytest.raises(ValueError, match="no molecule_split"):
        small_dataset.split("train")
    ds = make_dataset(200, n_molecules=50).split_by_molecule((0.6, 0.2, 0.2), seed=3)
    parts = {name: ds.split(name) for name in SPLITS}
    assert sum(len(p) for p in parts.values()) == len(ds)
    ids = {name: set(p.molecule_id.tolist()) for name, p in parts.items()}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    present = len(set(ds.molecule_id.tolist()))
    assert len(ids["val"]) == round(0.2 * present) and len(ids["test"]) == round(0.2 * present)
    with pytest.raises(ValueError, match="split must be one of"):
        ds.split("training")
    with pytest.raises(ValueError, match="fractions"):
        ds.split_by_molecule((0.5, 0.2, 0.2))


def test_element_counts(small_dataset):
    counts = small_dataset.element_counts()
    assert counts.shape == (len(small_dataset), 119)
    np.testing.assert_array_equal(counts.sum(axis=1), small_dataset.n_atoms)
    for i in (0, 5):
        np.testing.assert_array_equal(counts[i], np.bincount(small_dataset[i].atomic_numbers, minlength=119))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batches_round_trip_exactly(small_dataset, dtype):
    ds = small_dataset
    graphs = list(iter_batches(ds, 7, dtype=dtype))
    assert [g.n_graphs for g in graphs] == [7] * 5 + [5]
    g = AtomicGraph.collate(graphs)
    assert g.dtype == dtype and g.n_graphs == len(ds)
    # float32-stored positions and forces are exact in either dtype; float64 energies exactly in float64
    assert torch.equal(g.positions, torch.tensor(ds.positions).to(dtype))
    assert torch.equal(g.positions.double(), torch.tensor(ds.positions).double())
    assert torch.equal(g.forces.double(), torch.tensor(ds.forces).double())
    assert torch.equal(g.energy, torch.tensor(ds.energy).to(dtype))
    assert torch.equal(g.atomic_numbers, torch.tensor(ds.atomic_numbers))
    assert torch.equal(g.n_atoms_per_graph, torch.tensor(ds.n_atoms))
    if dtype == torch.float64:
        assert torch.equal(g.energy, torch.tensor(ds.energy))


def test_shuffled_batches_cover_everything_once_and_are_reproducible():
    ds = make_dataset(noise=0.5)  # distinct energies identify configurations

    def energies(gen):
        return torch.cat([g.energy for g in iter_batches(ds, 8, shuffle=True, generator=gen, dtype=torch.float64)])

    e1 = energies(torch.Generator().manual_seed(1))
    e2 = energies(torch.Generator().manual_seed(1))
    e3 = energies(np.random.default_rng(1))
    assert torch.equal(e1, e2)
    assert not torch.equal(e1, torch.tensor(ds.energy))
    for e in (e1, e3):
        assert torch.equal(torch.sort(e).values, torch.sort(torch.tensor(ds.energy)).values)
    # each graph's forces still belong to its energy: compare with the dataset's own configuration
    gen = torch.Generator().manual_seed(5)
    for g in iter_batches(ds, 6, shuffle=True, generator=gen, dtype=torch.float64):
        for sub in g.unbatch():
            i = int(np.flatnonzero(ds.energy == float(sub.energy[0]))[0])
            assert torch.equal(sub.forces, torch.tensor(ds[i].forces).double())
            assert torch.equal(sub.positions, torch.tensor(ds[i].positions).double())


def test_drop_last_and_argument_errors(small_dataset):
    assert [g.n_graphs for g in iter_batches(small_dataset, 7, drop_last=True)] == [7] * 5
    with pytest.raises(ValueError, match="generator"):
        next(iter_batches(small_dataset, 4, shuffle=True))
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_batches(small_dataset, 0))
    with pytest.raises(TypeError, match="MoleculeDataset"):
        next(iter_batches([1, 2], 4))


def test_batches_with_normaliser_match_graph_normalisation(small_dataset):
    norm = Normaliser.fit(make_dataset(80, noise=0.3, seed=2))
    raw = list(iter_batches(small_dataset, 10, dtype=torch.float64))
    normed = list(iter_batches(small_dataset, 10, dtype=torch.float64, normaliser=norm))
    for a, b in zip(raw, normed):
        c = norm.normalise(a)
        torch.testing.assert_close(b.energy, c.energy, rtol=0, atol=1e-9)
        torch.testing.assert_close(b.forces, a.forces / norm.std, rtol=1e-15, atol=0)
