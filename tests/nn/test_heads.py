"""Output heads: EnergyHead, MLPForceHead (not equivariant), VectorForceHead (O(3)-equivariant)."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

from nnip_scaling.geometry import random_rotation, reflection
from nnip_scaling.nn import EnergyHead, MLPForceHead, VectorForceHead
from nnip_scaling.nn.mlp import MLP


class _State(NamedTuple):
    scalars: torch.Tensor
    vectors: torch.Tensor


def _state(n=6, w=8, e=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return _State(torch.randn(n, w, generator=gen, dtype=torch.float64),
                  torch.randn(n, 3, e, generator=gen, dtype=torch.float64))


def test_energy_head_shape_and_formula():
    torch.manual_seed(0)
    head = EnergyHead(8, hidden=5).double()
    s = _state().scalars
    out = head(s)
    assert out.shape == (6,)
    l1, l2 = head.mlp.layers
    ref = (l2.weight @ torch.nn.functional.silu(l1.weight @ s.T + l1.bias[:, None]) + l2.bias[:, None])[0]
    assert torch.allclose(out, ref, atol=1e-13)
    assert sum(p.numel() for p in head.parameters()) == 8 * 5 + 5 + 5 + 1


def test_vector_force_head_is_o3_equivariant_and_learned_combination():
    torch.manual_seed(1)
    head = VectorForceHead(8, 3).double()
    st = _state()
    f = head(st)
    assert f.shape == (6, 3)
    coeff = head.lin(st.scalars)
    assert torch.allclose(f, torch.einsum("nie,ne->ni", st.vectors, coeff), atol=1e-13)
    gen = torch.Generator().manual_seed(2)
    for q in (random_rotation(generator=gen, dtype=torch.float64),
              reflection(torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64))):
        rotated = _State(st.scalars, torch.einsum("ij,njc->nic", q, st.vectors))
        assert torch.allclose(head(rotated), f @ q.T, atol=1e-12)


def test_mlp_force_head_is_not_equivariant():
    torch.manual_seed(3)
    head = MLPForceHead(8).double()
    st = _state()
    f = head(st)
    assert f.shape == (6, 3)
    q = random_rotation(generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    # the head sees the same (non-invariant) features whatever the orientation: output does not rotate
    assert (f @ q.T - f).norm() / f.norm() > 0.1


def test_readout_init_scales_as_one_over_fan_in():
    torch.manual_seed(5)
    for w in (1024, 2048):  # w samples of the readout row: sample std within ~3%
        head = EnergyHead(w, hidden=w)
        last = head.mlp.layers[-1]
        assert last.weight.std().item() == pytest.approx(1.0 / w, rel=0.1)
        assert torch.count_nonzero(last.bias) == 0
        hidden = head.mlp.layers[0]
        assert hidden.weight.std().item() == pytest.approx(w**-0.5, rel=0.05)
    lin = VectorForceHead(400, 20).lin
    assert lin.weight.std().item() == pytest.approx(1.0 / 400, rel=0.1)


def test_mlp_validates_sizes():
    with pytest.raises(ValueError, match="sizes"):
        MLP(0, [4], 1)
    with pytest.raises(ValueError, match="sizes"):
        MLP(3, [0], 1)
    assert MLP(3, [], 2)(torch.randn(4, 3)).shape == (4, 2)
