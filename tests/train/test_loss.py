"""Eq. (1) against a hand computation, and its edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.models import ModelOutput
from nnip_scaling.train import force_field_loss, loss_terms


def _batch() -> AtomicGraph:
    # molecule 0: 2 atoms, molecule 1: 3 atoms
    pos = torch.arange(15, dtype=torch.float64).reshape(5, 3) * 0.5
    return AtomicGraph.from_arrays(
        pos, torch.tensor([1, 8, 6, 1, 1]), torch.tensor([0, 0, 1, 1, 1]),
        energy=torch.tensor([-1.0, 2.0], dtype=torch.float64),
        forces=torch.tensor([[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 0], [1, 1, 1]], dtype=torch.float64),
    )


def test_eq1_matches_hand_computation():
    g = _batch()
    e_pred = torch.tensor([0.0, 5.0], dtype=torch.float64)  # errors 1 and 3
    f_pred = torch.tensor([[3, 4, 0], [1, 0, 0], [0, 2, 0], [0, 0, 12], [1, 1, 1]], dtype=torch.float64)
    # force error norms: atom0 5, atom1 0, atom2 0, atom3 12, atom4 0
    t = loss_terms(e_pred, f_pred, g)
    assert torch.allclose(t.energy, torch.tensor([1 / 2, 3 / 3], dtype=torch.float64))
    assert torch.allclose(t.force, torch.tensor([5 / 2, 12 / 3], dtype=torch.float64))
    # batch loss = mean over molecules of eq. (1)
    hand = ((1 / 2 + 5 / 2) + (3 / 3 + 12 / 3)) / 2
    loss = force_field_loss(ModelOutput(energy=e_pred, forces=f_pred), g)
    assert math.isclose(float(loss), hand, rel_tol=1e-14)


def test_weights_scale_terms():
    g = _batch()
    e_pred = torch.tensor([0.0, 5.0], dtype=torch.float64)
    f_pred = g.forces + 1.0
    t1 = loss_terms(e_pred, f_pred, g)
    t2 = loss_terms(e_pred, f_pred, g, energy_weight=2.0, force_weight=0.5)
    assert torch.allclose(t2.energy, 2 * t1.energy) and torch.allclose(t2.force, 0.5 * t1.force)
    # the force term is the mean L2 norm (not squared): every atom is off by (1,1,1) -> sqrt(3)
    assert torch.allclose(t1.force, torch.full((2,), math.sqrt(3), dtype=torch.float64))


def test_gradient_finite_at_exact_fit():
    g = _batch()
    f_pred = g.forces.clone().requires_grad_(True)
    e_pred = (g.energy + 0.5).requires_grad_(True)
    loss = force_field_loss(ModelOutput(energy=e_pred, forces=f_pred), g)
    loss.backward()
    assert torch.isfinite(f_pred.grad).all() and torch.equal(f_pred.grad, torch.zeros_like(f_pred.grad))
    # d/dE of |E - e|/n / n_graphs = sign / (n * 2)
    assert torch.allclose(e_pred.grad, torch.tensor([1 / 4, 1 / 6], dtype=torch.float64))


def test_gradient_matches_finite_difference():
    g = _batch()
    f = (g.forces + torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    f.requires_grad_(True)
    e = torch.tensor([0.3, -0.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e_, f_: force_field_loss(ModelOutput(e_, f_), g), (e, f))


def test_bad_input():
    g = _batch()
    with pytest.raises(ValueError, match="energy must have shape"):
        loss_terms(torch.zeros(3, dtype=torch.float64), g.forces, g)
    with pytest.raises(ValueError, match="forces must have shape"):
        loss_terms(g.energy, g.forces[:4], g)
    with pytest.raises(ValueError, match="labels"):
        loss_terms(g.energy, g.forces, g.replace(energy=None))
    with pytest.raises(ValueError, match="energy_weight"):
        loss_terms(g.energy, g.forces, g, energy_weight=-1.0)
    with pytest.raises(ValueError, match="both 0"):
        loss_terms(g.energy, g.forces, g, energy_weight=0.0, force_weight=0.0)
    with pytest.raises(TypeError, match="graph"):
        loss_terms(g.energy, g.forces, "graph")
