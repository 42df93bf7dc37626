"""Energy referencing (least squares on element counts) and the Normaliser (paper app. D)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from _data_helpers import PLANTED, make_dataset

from nnip_scaling import AtomicGraph
from nnip_scaling.data import Normaliser, fit_element_references, iter_batches


def test_references_recover_planted_per_element_energies():
    ds = make_dataset(300, n_molecules=60, noise=0.0, seed=1)
    ref = fit_element_references(ds.element_counts(), ds.energy)
    for z, e in PLANTED.items():
        assert ref[z] == pytest.approx(e, abs=1e-8)
    assert np.isnan(ref[9]) and np.isnan(ref[0])  # never seen
    # with noise the estimate is close, and referenced energies are the noise
    noisy = make_dataset(300, n_molecules=60, noise=0.05, seed=1)
    ref = fit_element_references(noisy.element_counts(), noisy.energy)
    for z, e in PLANTED.items():
        assert ref[z] == pytest.approx(e, abs=0.05)


def test_rank_deficient_counts_warn_and_still_reference_exactly():
    # every configuration is C2H6: references not identifiable, referenced energies still zero-mean exact
    counts = np.zeros((5, 119), np.int64)
    counts[:, 6], counts[:, 1] = 2, 6
    energy = np.full(5, 2 * -1030.0 + 6 * -13.6)
    with pytest.warns(UserWarning, match="rank"):
        ref = fit_element_references(counts, energy)
    np.testing.assert_allclose(counts[:, [1, 6]] @ ref[[1, 6]], energy, rtol=1e-12)


def test_reference_argument_errors():
    with pytest.raises(ValueError, match="counts"):
        fit_element_references(np.zeros((3, 10)), np.zeros(3))
    with pytest.raises(ValueError, match="energy"):
        fit_element_references(np.zeros((3, 119)), np.zeros(4))
    with pytest.raises(ValueError, match="non-finite"):
        fit_element_references(np.ones((2, 119)), np.array([1.0, np.nan]))


def test_normaliser_statistics_and_round_trip():
    train = make_dataset(200, n_molecules=40, noise=0.2, seed=3)
    norm = Normaliser.fit(train)
    # normalised training energies have mean 0 and sample std 1; forces are scaled by 1/sigma
    g = AtomicGraph.collate(list(iter_batches(train, 64, dtype=torch.float64)))
    gn = norm.normalise(g)
    assert float(gn.energy.mean()) == pytest.approx(0.0, abs=1e-10)
    assert float(gn.energy.std(unbiased=True)) == pytest.approx(1.0, abs=1e-10)
    torch.testing.assert_close(gn.forces * norm.std, g.forces, rtol=1e-14, atol=0)
    # predictions in normalised units come back in eV and eV/Å
    back_e = norm.energy_to_ev(gn.energy, g.atomic_numbers, g.batch)
    torch.testing.assert_close(back_e, g.energy, rtol=0, atol=1e-9)
    torch.testing.assert_close(norm.forces_to_ev(gn.forces), g.forces, rtol=1e-14, atol=0)
    # sigma is the spread of the (noise) referenced energies, not of the totals
    assert 0.1 < norm.std < 0.4


def test_normaliser_energy_conversion_formula_by_hand():
    ref = torch.full((119,), float("nan"), dtype=torch.float64)
    ref[1], ref[8] = -10.0, -100.0
    norm = Normaliser(ref, mean=2.0, std=0.5)
    g = AtomicGraph.from_molecules([([8, 1, 1], np.zeros((3, 3))), ([1, 1], np.ones((2, 3)))], dtype=torch.float64)
    e = norm.energy_to_ev(torch.tensor([1.0, -2.0], dtype=torch.float64), g.atomic_numbers, g.batch)
    torch.testing.assert_close(e, torch.tensor([0.5 + 2 - 120, -1.0 + 2 - 20], dtype=torch.float64))
    # float32 in, float32 out
    e32 = norm.energy_to_ev(torch.tensor([1.0, -2.0]), g.atomic_numbers, g.batch)
    assert e32.dtype == torch.float32
    with pytest.raises(ValueError, match=r"element\(s\) \[6\]"):
        g6 = AtomicGraph.from_molecules([([6], np.zeros((1, 3)))])
        norm.energy_to_ev(torch.zeros(1), g6.atomic_numbers, g6.batch)


def test_state_dict_round_trips_through_torch_save_weights_only():
    norm = Normaliser.fit(make_dataset(50, noise=0.1))
    buf = io.BytesIO()
    torch.save({"normaliser": norm.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)["normaliser"]
    back = Normaliser.from_state_dict(state)
    assert back.mean == norm.mean and back.std == norm.std
    assert torch.equal(torch.nan_to_num(back.reference, nan=0.5), torch.nan_to_num(norm.reference, nan=0.5))
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    with pytest.raises(ValueError, match="missing keys"):
        Normaliser.from_state_dict({"mean": torch.tensor(0.0)})


def test_normaliser_rejects_bad_values():
    ref = torch.zeros(119, dtype=torch.float64)
    with pytest.raises(ValueError, match="std"):
        Normaliser(ref, mean=0.0, std=0.0)
    with pytest.raises(ValueError, match="reference"):
        Normaliser(torch.zeros(10), mean=0.0, std=1.0)
    with pytest.raises(ValueError, match="at least 2"):
        Normaliser.fit(make_dataset(1))
    g = AtomicGraph.from_molecules([([1], np.zeros((1, 3)))])
    with pytest.raises(ValueError, match="energy and forces"):
        Normaliser(ref, mean=0.0, std=1.0).normalise(g)
