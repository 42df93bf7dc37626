"""Haar-random rotations, reflections, axis rotations."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnip_scaling.geometry import (
    random_reflection,
    random_rotation,
    reflection,
    rotation_90,
    rotation_about_axis,
)

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 2e-6, torch.float64: 1e-13}


def _assert_orthogonal(r, det, dtype):
    eye = torch.eye(3, dtype=dtype)
    torch.testing.assert_close(r @ r.transpose(-1, -2), eye.expand_as(r), rtol=0, atol=TOL[dtype])
    torch.testing.assert_close(
        torch.linalg.det(r), torch.full(r.shape[:-2], float(det), dtype=dtype), rtol=0, atol=TOL[dtype]
    )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), dtype=st.sampled_from(DTYPES), n=st.integers(1, 40))
def test_random_rotation_proper_orthogonal_and_reproducible(seed, dtype, n):
    r = random_rotation(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    assert r.shape == (n, 3, 3) and r.dtype == dtype
    _assert_orthogonal(r, 1, dtype)
    again = random_rotation(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    assert torch.equal(r, again)
    other = random_rotation(n, generator=torch.Generator().manual_seed(seed + 1), dtype=dtype)
    assert not torch.equal(r, other)
    # same seed, other dtype: same rotations up to rounding
    r64 = random_rotation(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    torch.testing.assert_close(r.double(), r64, rtol=0, atol=1e-6)


def test_single_and_empty_and_default_dtype():
    g = torch.Generator().manual_seed(0)
    r = random_rotation(generator=g)
    assert r.shape == (3, 3) and r.dtype == torch.get_default_dtype()
    assert random_rotation(0, generator=g).shape == (0, 3, 3)
    m = random_reflection(7, generator=g, dtype=torch.float64)
    _assert_orthogonal(m, -1, torch.float64)


@pytest.mark.slow
def test_haar_statistics():
    # Haar on SO(3): E[R] = 0; E[R_ij^2] = 1/3; the rotation angle has density (1 - cos t)/pi,
    # so E[trace] = 0 and E[cos t] = -1/2 ... i.e. trace = 1 + 2 cos t has mean 0 and variance 1.
    n = 200_000
    r = random_rotation(n, generator=torch.Generator().manual_seed(123), dtype=torch.float64)
    se = 1 / math.sqrt(n)  # each entry has variance 1/3 < 1
    assert r.mean(0).abs().max() < 5 * se
    torch.testing.assert_close(
        (r**2).mean(0), torch.full((3, 3), 1 / 3, dtype=torch.float64), rtol=0, atol=5 * se
    )
    tr = torch.diagonal(r, dim1=-2, dim2=-1).sum(-1)
    assert abs(tr.mean().item()) < 5 * se
    assert abs(tr.var().item() - 1.0) < 10 * se
    # a biased sampler (e.g. QR without the sign fix) fails these: check it really would
    g = torch.randn(n, 3, 3, generator=torch.Generator().manual_seed(123), dtype=torch.float64)
    q, _ = torch.linalg.qr(g)
    q = q * torch.linalg.det(q)[:, None, None]
    assert r.mean(0).abs().max() < 5 * se < q.mean(0).abs().max()


def test_haar_mean_quick():
    r = random_rotation(20_000, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert r.mean(0).abs().max() < 5 / math.sqrt(20_000)


def test_generator_is_required():
    with pytest.raises(TypeError, match="generator"):
        random_rotation(3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="generator"):
        random_rotation(3, generator=0)
    with pytest.raises(ValueError, match="n"):
        random_rotation(-1, generator=torch.Generator())


@pytest.mark.parametrize("dtype", DTYPES)
def test_reflection(dtype):
    n = torch.tensor([[1.0, 2.0, -0.5], [0.0, 0.0, 3.0]], dtype=dtype)
    m = reflection(n)
    assert m.shape == (2, 3, 3)
    _assert_orthogonal(m, -1, dtype)
    torch.testing.assert_close(m, m.transpose(-1, -2), rtol=0, atol=0)
    torch.testing.assert_close((m @ n[..., None])[..., 0], -n, rtol=0, atol=10 * TOL[dtype])
    inplane = torch.linalg.cross(n, torch.tensor([0.3, 1.0, 0.2], dtype=dtype).expand_as(n), dim=-1)
    torch.testing.assert_close((m @ inplane[..., None])[..., 0], inplane, rtol=0, atol=10 * TOL[dtype])
    assert torch.equal(reflection(torch.tensor([0.0, 0.0, 2.0]))[2], torch.tensor([0.0, 0.0, -1.0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotation_about_axis(dtype):
    axis = torch.tensor([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]], dtype=dtype)
    angle = torch.tensor([math.pi / 2, 2 * math.pi / 3], dtype=dtype)
    r = rotation_about_axis(axis, angle)
    _assert_orthogonal(r, 1, dtype)
    ex = torch.tensor([1.0, 0.0, 0.0], dtype=dtype)
    torch.testing.assert_close(r[0] @ ex, torch.tensor([0.0, 1.0, 0.0], dtype=dtype), rtol=0, atol=1e-6)
    # 120 degrees about (1,1,1) cycles x -> y -> z
    torch.testing.assert_close(r[1] @ ex, torch.tensor([0.0, 1.0, 0.0], dtype=dtype), rtol=0, atol=1e-6)
    torch.testing.assert_close(r[:, :, :] @ axis[..., None], axis[..., None], rtol=0, atol=1e-6)
    # broadcasting a single axis over many angles, and a float angle
    many = rotation_about_axis(axis[1], torch.linspace(0, 1, 4, dtype=dtype))
    assert many.shape == (4, 3, 3)
    assert rotation_about_axis(axis[0], 0.3).shape == (3, 3)
    # composition: R(a) R(b) = R(a + b) about the same axis
    torch.testing.assert_close(
        rotation_about_axis(axis[1], 0.3) @ rotation_about_axis(axis[1], 0.4),
        rotation_about_axis(axis[1], 0.7),
        rtol=0,
        atol=1e-6,
    )


@pytest.mark.parametrize("axis", ["x", "y", "z", 0, 1, 2])
@pytest.mark.parametrize("k", [-1, 0, 1, 2, 3, 5])
def test_rotation_90_exact(axis, k):
    r = rotation_90(axis, k=k, dtype=torch.float64)
    i = "xyz".index(axis) if isinstance(axis, str) else axis
    ref = rotation_about_axis(torch.eye(3, dtype=torch.float64)[i], k * math.pi / 2)
    torch.testing.assert_close(r, ref, rtol=0, atol=1e-14)
    assert set(r.flatten().tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.equal(rotation_90(axis, k=k + 4, dtype=torch.float64), r)


def test_rotation_90_validation():
    with pytest.raises(ValueError, match="axis"):
        rotation_90("w")
    with pytest.raises(ValueError, match="axis"):
        rotation_90(3)
    with pytest.raises(TypeError, match="k"):
        rotation_90("x", k=1.0)
    with pytest.raises(ValueError, match="axis"):
        rotation_about_axis(torch.ones(2), 0.1)
