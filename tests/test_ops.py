from __future__ import annotations

import importlib.util

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnip_scaling.ops import scatter_mean, scatter_sum


@settings(max_examples=30, deadline=None)
@given(n_src=st.integers(0, 50), dim_size=st.integers(1, 10), feat=st.integers(1, 4), seed=st.integers(0, 1000))
def test_scatter_against_loop(n_src, dim_size, feat, seed):
    gen = torch.Generator().manual_seed(seed)
    src = torch.randn(n_src, feat, generator=gen, dtype=torch.float64)
    index = torch.randint(0, dim_size, (n_src,), generator=gen)
    total = torch.zeros(dim_size, feat, dtype=torch.float64)
    count = torch.zeros(dim_size, dtype=torch.float64)
    for i in range(n_src):
        total[index[i]] += src[i]
        count[index[i]] += 1
    assert torch.allclose(scatter_sum(src, index, dim_size), total, atol=1e-12)
    mean = total / count.clamp(min=1)[:, None]
    out = scatter_mean(src, index, dim_size)
    assert torch.allclose(out, mean, atol=1e-12)
    assert torch.isfinite(out).all()  # empty buckets give 0, not NaN


def test_scatter_is_differentiable():
    src = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([0, 0, 1, 2, 2, 2])
    assert torch.autograd.gradcheck(lambda s: scatter_mean(s, index, 4), (src,))


@pytest.mark.parametrize(
    "args, err",
    [
        ((torch.zeros(3, 2), torch.zeros(3), 2), TypeError),
        ((torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64), 2), ValueError),
        ((torch.zeros(3, 2), torch.zeros(3, 1, dtype=torch.int64), 2), ValueError),
        ((torch.zeros(3, 2), torch.zeros(3, dtype=torch.int64), -1), ValueError),
    ],
)
def test_bad_input(args, err):
    with pytest.raises(err):
        scatter_sum(*args)


@pytest.mark.skipif(importlib.util.find_spec("torch_scatter") is None, reason="torch-scatter not installed")
def test_torch_scatter_backend_identical():
    src = torch.randn(100, 8, dtype=torch.float64)
    index = torch.randint(0, 7, (100,))
    a = scatter_mean(src, index, 9, backend="torch")
    b = scatter_mean(src, index, 9, backend="torch_scatter")
    assert torch.allclose(a, b, atol=1e-12)
