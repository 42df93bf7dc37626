"""AtomEmbedding: lookup by atomic number, bounds, μP input init."""

from __future__ import annotations

import pytest
import torch

from nnip_scaling.nn import AtomEmbedding


def test_lookup_rows_by_atomic_number():
    emb = AtomEmbedding(10, 4)
    z = torch.tensor([1, 6, 6, 10])
    out = emb(z)
    assert out.shape == (4, 4)
    assert torch.equal(out[0], emb.weight[0]) and torch.equal(out[3], emb.weight[9])
    assert torch.equal(out[1], out[2])
    assert emb(torch.zeros(0, dtype=torch.int64)).shape == (0, 4)
    assert sum(p.numel() for p in emb.parameters()) == 40


def test_input_layer_init_is_unit_variance():
    torch.manual_seed(0)
    emb = AtomEmbedding(100, 512)
    assert emb.weight.std().item() == pytest.approx(1.0, rel=0.02)
    assert abs(emb.weight.mean().item()) < 0.01


def test_bad_input():
    emb = AtomEmbedding(8, 4)
    with pytest.raises(ValueError, match="max_z=8"):
        emb(torch.tensor([1, 9]))
    with pytest.raises(ValueError, match="atomic_numbers"):
        emb(torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="int64"):
        emb(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="max_z"):
        AtomEmbedding(0, 4)
    with pytest.raises(ValueError, match="dim"):
        AtomEmbedding(4, 0)
