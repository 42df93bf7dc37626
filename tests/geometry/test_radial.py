"""Radial bases and the polynomial envelope."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnip_scaling.geometry import bessel_basis, gaussian_basis, polynomial_envelope

DTYPES = [torch.float32, torch.float64]


def _derivatives(f, r):
    """Value, first and second derivative of an elementwise function by autograd."""
    r = r.clone().requires_grad_(True)
    y = f(r)
    (d1,) = torch.autograd.grad(y.sum(), r, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), r)
    return y.detach(), d1.detach(), d2


@pytest.mark.parametrize("p", [2, 3, 5, 6, 8])
def test_envelope_value_and_derivatives_vanish_at_cutoff(p):
    c = 4.5
    f = lambda r: polynomial_envelope(r, cutoff=c, p=p)  # noqa: E731
    # evaluate the polynomial branch at the cutoff from the left (r = c itself returns the 0 branch)
    r = torch.tensor([c * (1 - 1e-12)], dtype=torch.float64)
    y, d1, d2 = _derivatives(f, r)
    assert abs(y.item()) < 1e-9
    assert abs(d1.item()) < 1e-9
    assert abs(d2.item()) < 1e-8
    # and the zero branch just beyond, so value/d1/d2 are continuous across the cutoff
    y, d1, d2 = _derivatives(f, torch.tensor([c, c + 1e-9, 7.0], dtype=torch.float64))
    assert torch.equal(y, torch.zeros(3, dtype=torch.float64))
    assert torch.equal(d1, torch.zeros(3, dtype=torch.float64))
    assert torch.equal(d2, torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("p", [2, 5, 8])
def test_envelope_third_derivative_does_not_vanish(p):
    # The envelope is C^2 at the cutoff, not smoother: the third derivative of the polynomial
    # branch at d = 1 is -p(p+1)(p+2)/c^3 (guards against a wrong polynomial that is "too flat").
    c = 3.0
    r = torch.tensor([c], dtype=torch.float64, requires_grad=True)
    d = r / c
    a, b, cc = -(p + 1) * (p + 2) / 2, p * (p + 2), -p * (p + 1) / 2
    u = 1 + a * d**p + b * d ** (p + 1) + cc * d ** (p + 2)
    (g1,) = torch.autograd.grad(u, r, create_graph=True)
    (g2,) = torch.autograd.grad(g1, r, create_graph=True)
    (g3,) = torch.autograd.grad(g2, r)
    assert g3.item() == pytest.approx(-p * (p + 1) * (p + 2) / c**3, rel=1e-10)
    # the library's envelope equals this polynomial inside the cutoff
    rr = torch.linspace(0, c * 0.999, 50, dtype=torch.float64)
    dd = rr / c
    ref = 1 + a * dd**p + b * dd ** (p + 1) + cc * dd ** (p + 2)
    torch.testing.assert_close(polynomial_envelope(rr, cutoff=c, p=p), ref, rtol=0, atol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
def test_envelope_range_monotone_and_one_at_origin(dtype):
    c = 5.0
    r = torch.linspace(0, 1.5 * c, 1001, dtype=dtype)
    u = polynomial_envelope(r, cutoff=c)
    assert u.dtype == dtype and u.shape == r.shape
    assert u[0].item() == 1.0
    eps = torch.finfo(dtype).eps
    assert (u >= 0).all()  # exactly: factorised form, no cancellation near the cutoff
    assert (u <= 1.0 + 2 * eps).all()  # 1 up to rounding of the product near r = 0
    assert (u[1:] <= u[:-1] + 2 * eps).all()  # non-increasing
    assert (u[r >= c] == 0).all()
    assert (u[r < 0.99 * c] > 0).all()
    # gradient at the origin is zero (p >= 2), so no kink at r = 0 either
    r0 = torch.zeros(1, dtype=dtype, requires_grad=True)
    (g,) = torch.autograd.grad(polynomial_envelope(r0, cutoff=c).sum(), r0)
    assert g.item() == 0.0


@settings(max_examples=25, deadline=None)
@given(r=st.floats(0.0, 10.0), c=st.floats(0.5, 8.0))
def test_envelope_continuity(r, c):
    # |u(r + h) - u(r)| <= max|u'| h : no jumps anywhere, including at the cutoff
    h = 1e-7
    x = torch.tensor([r, r + h], dtype=torch.float64)
    u = polynomial_envelope(x, cutoff=c)
    assert abs((u[1] - u[0]).item()) < 3.0 / c * h * 1.01


@pytest.mark.parametrize("dtype", DTYPES)
def test_bessel_finite_at_zero_value_and_gradients(dtype):
    c, n = 5.0, 8
    r = torch.tensor([0.0, 1e-8, 1e-4, 2.0], dtype=dtype, requires_grad=True)
    e = bessel_basis(r, n=n, cutoff=c)
    assert e.shape == (4, n) and e.dtype == dtype
    k = torch.arange(1, n + 1, dtype=torch.float64)
    limit = math.sqrt(2 / c) * k * math.pi / c
    torch.testing.assert_close(e[0].double(), limit, rtol=1e-6, atol=0)
    torch.testing.assert_close(e[1].double(), limit, rtol=1e-6, atol=0)
    (g,) = torch.autograd.grad(e.sum(), r, create_graph=True)
    (g2,) = torch.autograd.grad(g.sum(), r)
    assert torch.isfinite(g).all() and torch.isfinite(g2).all()
    assert g[0].item() == 0.0  # even function of r: zero slope at the origin


def test_bessel_matches_closed_form_and_orthonormality():
    c, n = 4.0, 6
    r = torch.linspace(1e-3, c, 20001, dtype=torch.float64)
    e = bessel_basis(r, n=n, cutoff=c)
    k = torch.arange(1, n + 1, dtype=torch.float64)
    ref = math.sqrt(2 / c) * torch.sin(k * math.pi * r[:, None] / c) / r[:, None]
    torch.testing.assert_close(e, ref, rtol=1e-12, atol=1e-12)
    # orthonormal on [0, c] with weight r^2
    w = r**2
    gram = torch.trapezoid(e[:, :, None] * e[:, None, :] * w[:, None, None], r, dim=0)
    torch.testing.assert_close(gram, torch.eye(n, dtype=torch.float64), rtol=0, atol=1e-6)
    assert e[-1].abs().max() < 1e-12  # vanishes at the cutoff


def test_bessel_gradient_gradcheck_near_zero():
    r = torch.tensor([0.0, 1e-5, 2e-3, 0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: bessel_basis(x, n=5, cutoff=3.0), (r,))
    assert torch.autograd.gradgradcheck(lambda x: bessel_basis(x, n=5, cutoff=3.0), (r,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_basis(dtype):
    r = torch.tensor([[0.0, 1.0], [2.5, 5.0]], dtype=dtype)
    g = gaussian_basis(r, n=11, cutoff=5.0)
    assert g.shape == (2, 2, 11) and g.dtype == dtype
    # centres at 0, 0.5, ..., 5; width = spacing 0.5
    assert g[0, 0, 0].item() == 1.0 and g[1, 1, 10].item() == 1.0
    assert g[0, 1, 2].item() == pytest.approx(1.0)
    assert g[0, 1, 3].item() == pytest.approx(math.exp(-0.5), rel=1e-6)
    g2 = gaussian_basis(r, n=3, cutoff=4.0, start=1.0, width=2.0)
    # centres 1, 2.5, 4; sigma 2
    assert g2[1, 0, 1].item() == pytest.approx(1.0)
    assert g2[0, 0, 0].item() == pytest.approx(math.exp(-0.5 * 0.25), rel=1e-6)


def test_radial_validation():
    r = torch.ones(3)
    with pytest.raises(ValueError, match="n"):
        gaussian_basis(r, n=0, cutoff=5.0)
    with pytest.raises(ValueError, match="start"):
        gaussian_basis(r, n=4, cutoff=5.0, start=5.0)
    with pytest.raises(ValueError, match="width"):
        gaussian_basis(r, n=4, cutoff=5.0, width=-1.0)
    with pytest.raises(ValueError, match="cutoff"):
        bessel_basis(r, n=4, cutoff=0.0)
    with pytest.raises(TypeError, match="n"):
        bessel_basis(r, n=2.5, cutoff=1.0)
    with pytest.raises(ValueError, match="p"):
        polynomial_envelope(r, cutoff=5.0, p=1)
    with pytest.raises(TypeError, match="r"):
        polynomial_envelope(torch.ones(3, dtype=torch.long), cutoff=5.0)
    with pytest.raises(TypeError, match="r"):
        bessel_basis([1.0, 2.0], n=2, cutoff=5.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_basis_has_no_subnormal_values(dtype):
    """Far tails are exact zeros, never subnormal numbers (which slow x86 arithmetic 10-100x); every
    value at or above the smallest normal number is the plain formula, bit for bit."""
    sigma = 6.0 / 63 if dtype == torch.float32 else 0.01  # both put tails in the subnormal range
    r = torch.linspace(0.0, 6.0, 20001, dtype=dtype)
    g = gaussian_basis(r, n=64, cutoff=6.0, width=sigma)
    tiny = torch.finfo(dtype).tiny
    assert not ((g != 0) & (g.abs() < tiny)).any()
    centres = torch.linspace(0.0, 6.0, 64, dtype=dtype)
    plain = torch.exp(-0.5 * ((r[:, None] - centres) / sigma) ** 2)
    assert ((plain > 0) & (plain < tiny)).any()  # the case is exercised
    normal = plain >= tiny
    assert torch.equal(g[normal], plain[normal])
    assert (g[~normal] == 0).all()
