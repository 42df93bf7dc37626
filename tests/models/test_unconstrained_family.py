"""Unconstrained MPNN family: the paper's negative control (C.1)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nnip_scaling.models import build_model, random_rotate
from nnip_scaling.testing import assert_equivariant, equivariance_error

NON_ROTATION = ("translation", "atom_permutation", "graph_permutation")


@pytest.mark.parametrize("width", [4, 16, 32])
def test_translation_and_permutation_pass(graph64, width):
    torch.manual_seed(width)
    model = build_model("unconstrained", width, 3, dtype=torch.float64)
    assert_equivariant(model, graph64, checks=NON_ROTATION)


@pytest.mark.parametrize("forces", ["direct", "conservative"])
@pytest.mark.parametrize("width", [8, 32])
def test_rotation_fails_by_a_clear_margin(graph64, width, forces):
    torch.manual_seed(width)
    model = build_model("unconstrained", width, 3, dtype=torch.float64, forces=forces)
    report = equivariance_error(model, graph64, checks=("rotation",))
    # exact models sit at ~1e-15 here; the unconstrained one is off by percents
    assert report.rotation_energy > 1e-3
    assert report.rotation_forces > 1e-2
    with pytest.raises(AssertionError, match="rotation"):
        assert_equivariant(model, graph64, checks=("rotation",))


def test_conservative_translation_permutation(graph64):
    torch.manual_seed(0)
    model = build_model("unconstrained", 8, 2, dtype=torch.float64, forces="conservative")
    assert_equivariant(model, graph64, checks=NON_ROTATION)


def test_float32_runs(graph32):
    model = build_model("unconstrained", 16, 5)
    out = model(graph32)
    assert out.energy.dtype == torch.float32 and out.forces.dtype == torch.float32
    assert torch.isfinite(out.energy).all() and torch.isfinite(out.forces).all()
    assert_equivariant(model, graph32, checks=NON_ROTATION)


def test_augmentation_rotates_inputs_and_labels_consistently(graph64):
    # a model that is exactly equivariant would give rotated outputs; here we check the transform itself
    g = graph64.replace(energy=torch.arange(4.0, dtype=torch.float64),
                        forces=torch.randn(graph64.n_atoms, 3, dtype=torch.float64)).with_edges(6.0, 30)
    gr = random_rotate(g, torch.Generator().manual_seed(0))
    assert torch.equal(gr.energy, g.energy) and torch.equal(gr.edge_index, g.edge_index)
    assert torch.allclose(gr.edge_vec, gr.positions[gr.edge_index[0]] - gr.positions[gr.edge_index[1]], atol=1e-12)
    # distances and force norms preserved, per-molecule orthogonal map relating old and new
    assert torch.allclose(gr.edge_vec.norm(dim=1), g.edge_vec.norm(dim=1), atol=1e-12)
    assert torch.allclose(gr.forces.norm(dim=1), g.forces.norm(dim=1), atol=1e-12)
    for i in range(g.n_graphs):
        m = g.batch == i
        x, y = g.positions[m] - g.positions[m].mean(0), gr.positions[m] - gr.positions[m].mean(0)
        q = torch.linalg.lstsq(x, y).solution.T  # y = x q^T
        assert torch.allclose(q @ q.T, torch.eye(3, dtype=q.dtype), atol=1e-8)
        assert torch.linalg.det(q) == pytest.approx(1.0, abs=1e-8)
        assert torch.allclose(gr.forces[m], g.forces[m] @ q.T, atol=1e-8)
        assert torch.allclose(gr.positions[m].mean(0), g.positions[m].mean(0), atol=1e-12)
    # different molecules get different rotations; the same seed repeats
    again = random_rotate(g, torch.Generator().manual_seed(0))
    assert torch.equal(again.positions, gr.positions)
    assert not torch.allclose(random_rotate(g, torch.Generator().manual_seed(1)).positions, gr.positions)


def test_random_rotate_bad_input(graph64):
    with pytest.raises(TypeError, match="generator"):
        random_rotate(graph64, 0)
    with pytest.raises(TypeError, match="AtomicGraph"):
        random_rotate(graph64.positions, torch.Generator())


def test_config_round_trip(graph64):
    model = build_model("unconstrained", 8, 2, dtype="float64", max_z=20)
    clone = build_model(**dataclasses.asdict(model.config))
    clone.load_state_dict(model.state_dict())
    assert torch.equal(clone(graph64).forces, model(graph64).forces)
