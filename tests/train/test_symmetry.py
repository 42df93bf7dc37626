"""Symmetry loss (eq. 2) and test-time group averaging (eq. 23)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnip_scaling.data import Normaliser, iter_batches
from nnip_scaling.models import build_model
from nnip_scaling.testing import equivariance_error
from nnip_scaling.train import GroupAveraged, force_field_loss, symmetry_loss, train


def _batch(toy, n=6, dtype=torch.float64):
    tr, _ = toy
    return next(iter_batches(tr, n, normaliser=Normaliser.fit(tr), dtype=dtype))


def _gen():
    return torch.Generator().manual_seed(1)


@pytest.mark.parametrize("kind", ["cartesian", "spherical"])
def test_symmetry_loss_zero_for_equivariant_model(toy, kind):
    g = _batch(toy)
    torch.manual_seed(0)
    model = build_model(kind, 8, 2, dtype="float64")
    base = float(force_field_loss(model(g), g).detach())
    violation = float(symmetry_loss(model, g, 4, generator=_gen(), reference="model").detach())
    assert violation < 1e-12 * base
    # eq. 2 with the labels: the loss on rotated copies equals the loss itself for an equivariant model
    with_labels = float(symmetry_loss(model, g, 4, generator=_gen()).detach())
    assert with_labels == pytest.approx(base, rel=1e-12)


def test_symmetry_loss_positive_for_unconstrained_model(toy):
    g = _batch(toy)
    torch.manual_seed(0)
    model = build_model("unconstrained", 8, 2, dtype="float64")
    base = float(force_field_loss(model(g), g).detach())
    violation = symmetry_loss(model, g, 4, generator=_gen(), reference="model")
    assert float(violation.detach()) > 1e-2 * base
    assert abs(float(symmetry_loss(model, g, 4, generator=_gen()).detach()) - base) > 1e-6 * base
    # differentiable, deterministic given the generator
    violation.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert float(symmetry_loss(model, g, 4, generator=_gen(), reference="model").detach()) == float(violation.detach())


def test_symmetry_loss_bad_input(toy):
    g = _batch(toy)
    model = build_model("cartesian", 4, 1, dtype="float64")
    with pytest.raises(ValueError, match="n_rotations"):
        symmetry_loss(model, g, 0, generator=_gen())
    with pytest.raises(ValueError, match="reference"):
        symmetry_loss(model, g, 2, generator=_gen(), reference="target")
    with pytest.raises(TypeError, match="generator"):
        symmetry_loss(model, g, 2, generator=0)
    with pytest.raises(ValueError, match="labels"):
        symmetry_loss(model, g.replace(energy=None, forces=None), 2, generator=_gen())


def test_group_averaging_keeps_equivariant_model(toy):
    g = _batch(toy)
    model = build_model("cartesian", 8, 2, dtype="float64")
    ga = GroupAveraged(model, 5, seed=3)
    a, b = ga(g), model(g)
    scale = float(b.forces.detach().abs().max())
    assert torch.allclose(a.forces, b.forces, rtol=0, atol=1e-12 * scale)
    assert torch.allclose(a.energy, b.energy, rtol=1e-12, atol=0)


def test_group_averaging_reduces_unconstrained_equivariance_error(toy):
    tr, va = toy
    torch.manual_seed(0)
    model = build_model("unconstrained", 16, 2)
    # a briefly trained model (with rotation augmentation), as in the paper's appendix H
    train(model, tr, va, steps=80, epochs=10, batch_size=8, lr=3e-3, augment=True, kappa=2.0, eval_every=80,
          progress=False)
    model = model.double()
    g = next(iter_batches(va, 8, normaliser=Normaliser.fit(tr), dtype=torch.float64))
    base = equivariance_error(model, g, checks=("rotation",))

    def err(m):
        reps = [equivariance_error(GroupAveraged(model, m, seed=s), g, checks=("rotation",)) for s in range(3)]
        return np.mean([r.rotation_energy for r in reps]), np.mean([r.rotation_forces for r in reps])

    e1, f1 = err(1)
    e8, f8 = err(8)
    e64, f64 = err(64)
    assert base.rotation_forces > 0.05  # the model is far from equivariant
    assert e64 < e8 < e1 and f64 < f8 < f1
    assert e64 < 0.4 * e1 and f64 < 0.4 * f1
