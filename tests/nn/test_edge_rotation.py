"""gather_rotate / rotate_scatter: the plain formulas, bit for bit, in chunks; differentiable twice."""

import pytest
import torch

from nnip_scaling.nn import edge_rotation
from nnip_scaling.nn.edge_rotation import gather_rotate, rotate_scatter

F64 = torch.float64


def _inputs(n_atoms=7, n_edges=40, rows=5, dim=9, channels=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    index = torch.randint(0, n_atoms, (n_edges,), generator=gen)
    wigner = torch.randn(n_edges, rows, dim, generator=gen, dtype=F64)
    x = torch.randn(n_atoms, dim, channels, generator=gen, dtype=F64)
    y = torch.randn(n_edges, rows, channels, generator=gen, dtype=F64)
    return index, wigner, x, y


@pytest.fixture(params=[1 << 20, 25], ids=["one-chunk", "many-chunks"])
def chunk(request, monkeypatch):
    monkeypatch.setattr(edge_rotation, "CHUNK_NUMEL", request.param)
    return request.param


def test_gather_rotate_is_the_plain_formula(chunk):
    index, wigner, x, _ = _inputs()
    xa, wa = x.clone().requires_grad_(), wigner.clone().requires_grad_()
    xb, wb = x.clone().requires_grad_(), wigner.clone().requires_grad_()
    got = gather_rotate(xa, index, wa)
    ref = torch.bmm(wb, xb.index_select(0, index))
    assert torch.equal(got, ref)
    g = torch.randn_like(ref)
    got.backward(g)
    ref.backward(g)
    assert torch.equal(xa.grad, xb.grad)  # edges added in the same order
    assert torch.equal(wa.grad, wb.grad)


def test_rotate_scatter_is_the_plain_formula(chunk):
    index, wigner, _, y = _inputs()
    ya, wa = y.clone().requires_grad_(), wigner.clone().requires_grad_()
    yb, wb = y.clone().requires_grad_(), wigner.clone().requires_grad_()
    got = rotate_scatter(ya, index, wa, 7)
    ref = torch.zeros(7, wigner.shape[2], y.shape[2], dtype=F64).index_add(0, index, torch.bmm(wb.transpose(1, 2), yb))
    assert torch.equal(got, ref)  # edges added in the same order
    g = torch.randn_like(ref)
    got.backward(g)
    ref.backward(g)
    assert torch.equal(ya.grad, yb.grad)
    assert torch.equal(wa.grad, wb.grad)


def test_both_are_differentiable_twice(chunk):
    index, wigner, x, y = _inputs(n_atoms=4, n_edges=9, rows=3, dim=4, channels=2)
    x, y, wigner = (t.requires_grad_() for t in (x, y, wigner))
    assert torch.autograd.gradcheck(lambda a, w: gather_rotate(a, index, w), (x, wigner))
    assert torch.autograd.gradgradcheck(lambda a, w: gather_rotate(a, index, w), (x, wigner))
    assert torch.autograd.gradcheck(lambda b, w: rotate_scatter(b, index, w, 4), (y, wigner))
    assert torch.autograd.gradgradcheck(lambda b, w: rotate_scatter(b, index, w, 4), (y, wigner))


def test_no_gradient_for_a_constant_rotation():
    index, wigner, x, y = _inputs()
    x.requires_grad_()
    gather_rotate(x, index, wigner).sum().backward()
    assert x.grad is not None and wigner.grad is None


def test_bad_shapes_are_named():
    index, wigner, x, y = _inputs()
    with pytest.raises(ValueError, match="index must be \\[E\\]"):
        gather_rotate(x, index[:-1], wigner)
    with pytest.raises(ValueError, match="x has 8 rows"):
        gather_rotate(x[:, :8], index, wigner)
    with pytest.raises(ValueError, match="does not match wigner"):
        rotate_scatter(y[:, :4], index, wigner, 7)
    with pytest.raises(TypeError, match="integer"):
        rotate_scatter(y, index.double(), wigner, 7)


def test_two_sided_gather_rotate_is_the_concatenation(chunk):
    index, wigner, x, _ = _inputs()
    pair = torch.stack((index, index.flip(0)))
    xa, wa = x.clone().requires_grad_(), wigner.clone().requires_grad_()
    xb, wb = x.clone().requires_grad_(), wigner.clone().requires_grad_()
    got = gather_rotate(xa, pair, wa)
    ref = torch.bmm(wb, torch.cat((xb[pair[0]], xb[pair[1]]), dim=-1))
    assert got.shape == (40, 5, 6) and torch.equal(got, ref)
    g = torch.randn_like(ref)
    got.backward(g)
    ref.backward(g)
    assert torch.allclose(xa.grad, xb.grad, rtol=1e-13, atol=1e-13)  # the two sides are summed in another order
    assert torch.equal(wa.grad, wb.grad)
    small = _inputs(n_atoms=4, n_edges=9, rows=3, dim=4, channels=2)
    idx2 = torch.stack((small[0], small[0].roll(1)))
    xs, ws = small[2].requires_grad_(), small[1].requires_grad_()
    assert torch.autograd.gradgradcheck(lambda a, w: gather_rotate(a, idx2, w), (xs, ws))


def test_rotate_scatter_of_row_blocks_is_that_of_their_concatenation(chunk):
    index, wigner, _, y = _inputs()
    blocks = [b.clone().requires_grad_() for b in y.split([1, 3, 1], dim=1)]
    whole = y.clone().requires_grad_()
    got = rotate_scatter(blocks, index, wigner, 7)
    ref = rotate_scatter(whole, index, wigner, 7)
    assert torch.equal(got, ref)
    g = torch.randn_like(ref)
    got.backward(g)
    ref.backward(g)
    assert torch.equal(torch.cat([b.grad for b in blocks], dim=1), whole.grad)
    small = _inputs(n_atoms=4, n_edges=9, rows=3, dim=4, channels=2)
    parts = [p.clone().requires_grad_() for p in small[3].split([2, 1], dim=1)]
    w = small[1].clone().requires_grad_()
    assert torch.autograd.gradgradcheck(lambda a, b, ww: rotate_scatter([a, b], small[0], ww, 4), (*parts, w))


def test_rotate_scatter_add_accumulates_without_autograd():
    index, wigner, _, y = _inputs()
    out = torch.ones(7, wigner.shape[2], y.shape[2], dtype=F64)
    with torch.no_grad():
        edge_rotation.rotate_scatter_add_(out, y.split([2, 3], dim=1), index, wigner)
    assert torch.allclose(out, 1.0 + rotate_scatter(y, index, wigner, 7), rtol=1e-14, atol=1e-14)  # summed from 1, not 0
    with pytest.raises(RuntimeError, match="does not record gradients"):
        edge_rotation.rotate_scatter_add_(out, y.requires_grad_(), index, wigner)
    with pytest.raises(ValueError, match="out must be"):
        edge_rotation.rotate_scatter_add_(out[:, :4], y.detach(), index, wigner)
