"""Cartesian-vector family (MC-EGNN): exact O(3) equivariance, configs, errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.models import build_model, random_rotate
from nnip_scaling.models.cartesian import CartesianConfig
from nnip_scaling.testing import assert_equivariant, equivariance_error


@pytest.mark.parametrize(("width", "vector_channels"), [(4, None), (9, None), (16, 5), (25, None)])
def test_o3_equivariant_direct_forces_float64(graph64, width, vector_channels):
    torch.manual_seed(width)
    model = build_model("cartesian", width, 3, dtype=torch.float64, vector_channels=vector_channels, n_radial=8)
    report = assert_equivariant(model, graph64, group="O3")
    assert report.max() < 1e-10


@pytest.mark.parametrize("width", [4, 16])
def test_o3_equivariant_conservative_forces_float64(graph64, width):
    torch.manual_seed(width)
    model = build_model("cartesian", width, 2, dtype=torch.float64, forces="conservative", n_radial=8)
    assert_equivariant(model, graph64, group="O3")
    model.train()  # create_graph path
    assert_equivariant(model, graph64, group="O3")


def test_float32_runs_and_is_equivariant_to_rounding(graph32):
    torch.manual_seed(0)
    model = build_model("cartesian", 16, 3)
    out = model(graph32)
    assert out.energy.dtype == torch.float32 and torch.isfinite(out.forces).all()
    assert_equivariant(model, graph32, group="O3")


def test_equivariance_of_a_trained_like_model(graph64):
    """Large random weights (far from init) stay exactly equivariant: the symmetry is structural."""
    torch.manual_seed(1)
    model = build_model("cartesian", 9, 2, dtype=torch.float64, n_radial=4)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    assert_equivariant(model, graph64, group="O3")


def test_outputs_depend_on_geometry_and_species(graph64):
    torch.manual_seed(2)
    model = build_model("cartesian", 9, 2, dtype=torch.float64)
    out = model(graph64)
    assert out.forces.abs().max() > 0 and out.energy.abs().max() > 0
    stretched = graph64.with_positions(graph64.positions * 1.05)
    assert not torch.allclose(model(stretched).energy, out.energy)
    z = graph64.atomic_numbers.clone()
    z[0] = 9 if int(z[0]) != 9 else 17
    assert not torch.allclose(model(graph64.replace(atomic_numbers=z)).energy, out.energy)


def test_rotated_batch_gives_rotated_forces(graph64):
    torch.manual_seed(3)
    model = build_model("cartesian", 9, 2, dtype=torch.float64)
    g = graph64.replace(forces=torch.zeros(graph64.n_atoms, 3, dtype=torch.float64))
    out = model(g)
    # apply random_rotate to the model's own forces as labels and compare with the model on the rotated batch
    labelled = g.replace(forces=out.forces)
    rotated = random_rotate(labelled, torch.Generator().manual_seed(0))
    out_r = model(rotated)
    assert torch.allclose(out_r.energy, out.energy, atol=1e-10)
    assert torch.allclose(out_r.forces, rotated.forces, atol=1e-10)


def test_config_fields_and_round_trip(graph64):
    model = build_model("cartesian", 16, 2, dtype="float64", vector_channels=3, n_radial=6, cutoff=5.0)
    cfg = model.config
    assert isinstance(cfg, CartesianConfig)
    assert cfg.n_vector_channels == 3 and cfg.n_radial == 6
    clone = build_model(**dataclasses.asdict(cfg))
    clone.load_state_dict(model.state_dict())
    assert torch.equal(clone(graph64).forces, model(graph64).forces)
    assert build_model("cartesian", 30, 1).config.n_vector_channels == 5


def test_isolated_atom_and_lone_molecule_finite():
    g = AtomicGraph.from_molecules(
        [([8, 1, 1], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]), ([6], [[40.0, 0, 0]])], dtype=torch.float64
    )
    for forces in ("direct", "conservative"):
        model = build_model("cartesian", 4, 2, dtype="float64", forces=forces)
        out = model(g)
        assert torch.isfinite(out.energy).all() and torch.isfinite(out.forces).all()
        assert torch.equal(out.forces[3], torch.zeros(3, dtype=torch.float64))  # no vectors, no force


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(vector_channels=0), "vector_channels"),
        (dict(n_radial=-1), "n_radial"),
        (dict(width=0), "width"),
        (dict(depth=0), "depth"),
    ],
)
def test_bad_options(kwargs, match):
    args = dict(kind="cartesian", width=8, depth=2) | kwargs
    with pytest.raises(ValueError, match=match):
        build_model(**args)


def test_kind_mismatch_in_config():
    with pytest.raises(ValueError, match="kind"):
        CartesianConfig(kind="unconstrained", width=4, depth=1)


def test_equivariance_error_reports_reflection(graph64):
    model = build_model("cartesian", 4, 1, dtype=torch.float64)
    rep = equivariance_error(model, graph64, group="O3", checks=("rotation",))
    assert rep.reflection_forces is not None and rep.reflection_forces < 1e-10
