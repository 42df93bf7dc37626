"""CartesianVectorBlock and VectorChannelInit (paper eq. 11-12, appendix C.3)."""

from __future__ import annotations

import math

import pytest
import torch

from nnip_scaling.geometry import random_rotation, reflection
from nnip_scaling.neighbors import radius_graph
from nnip_scaling.nn import CartesianVectorBlock
from nnip_scaling.nn.cartesian import VectorChannelInit, default_vector_channels, radial_features


def _inputs(n=7, w=6, e=3, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=gen, dtype=dtype) * 1.5
    edge_index = radius_graph(pos, torch.zeros(n, dtype=torch.int64), 3.0)
    h = torch.randn(n, w, generator=gen, dtype=dtype)
    vec = torch.randn(n, 3, e, generator=gen, dtype=dtype) * 0.3
    return h, vec, pos, edge_index


def _edge_vec(pos, ei):
    return pos[ei[0]] - pos[ei[1]]


def _reference(block, h, vec, pos, ei):
    """Eq. 11-12 and the node update, literally: absolute channels X_v = x_v + D_v, loop over targets."""
    silu = torch.nn.functional.silu
    e, c = block.vector_channels, block.cutoff
    x_abs = pos.unsqueeze(-1) + vec
    w1 = torch.cat([block.lin_source.weight, block.lin_target.weight, block.lin_norms.weight / c**2], 1)
    h_new, x_new = h.clone(), x_abs.clone()
    for v in range(h.shape[0]):
        ms, dxs = [], []
        for k in torch.nonzero(ei[1] == v).flatten().tolist():
            u = int(ei[0, k])
            x_uv = x_abs[u] - x_abs[v]  # [3, E]
            sq = (x_uv**2).sum(0)  # channel-wise squared norms
            pre = w1 @ torch.cat([h[u], h[v], sq]) + block.lin_target.bias
            if block.lin_radial is not None:
                r = (pos[u] - pos[v]).norm().reshape(1)
                pre = pre + block.lin_radial.weight @ radial_features(r, n=block.n_radial, cutoff=c)[0]
            m = silu(block.lin_message(silu(pre)))
            phi = block.lin_mix(silu(block.lin_coord(m))).reshape(e, e)
            ms.append(m)
            dxs.append(x_uv @ phi / e)
        if ms:
            agg = torch.stack(ms).mean(0)
            x_new[v] = x_abs[v] + torch.stack(dxs).mean(0)
        else:
            agg = torch.zeros_like(h[v])
        h_new[v] = h[v] + block.lin_update2(silu(block.lin_update1(torch.cat([h[v], agg]))))
    return h_new, x_new - pos.unsqueeze(-1)


@pytest.mark.parametrize("n_radial", [0, 4])
def test_matches_literal_equations(n_radial):
    torch.manual_seed(0)
    block = CartesianVectorBlock(6, vector_channels=3, n_radial=n_radial, cutoff=3.0).double()
    h, vec, pos, ei = _inputs()
    out_h, out_x = block(h, vec, ei, _edge_vec(pos, ei))
    ref_h, ref_x = _reference(block, h, vec, pos, ei)
    assert torch.allclose(out_h, ref_h, rtol=1e-11, atol=1e-12)
    assert torch.allclose(out_x, ref_x, rtol=1e-11, atol=1e-12)


def test_o3_equivariance_of_block():
    torch.manual_seed(1)
    block = CartesianVectorBlock(8, vector_channels=3, n_radial=5, cutoff=3.0).double()
    h, vec, pos, ei = _inputs(w=8)
    out_h, out_x = block(h, vec, ei, _edge_vec(pos, ei))
    gen = torch.Generator().manual_seed(3)
    rot = random_rotation(generator=gen, dtype=torch.float64)
    refl = reflection(torch.tensor([0.3, -1.0, 0.5], dtype=torch.float64))
    for q in (rot, refl, rot @ refl):
        pos_q = pos @ q.T + torch.tensor([1.0, 2.0, -3.0], dtype=torch.float64)
        vec_q = torch.einsum("ij,njc->nic", q, vec)
        h2, x2 = block(h, vec_q, ei, _edge_vec(pos_q, ei))
        assert torch.allclose(h2, out_h, rtol=0, atol=1e-12)
        assert torch.allclose(x2, torch.einsum("ij,njc->nic", q, out_x), rtol=0, atol=1e-12)


def test_gradcheck_float64():
    torch.manual_seed(2)
    block = CartesianVectorBlock(3, vector_channels=2, n_radial=3, cutoff=3.0).double()
    h, vec, pos, ei = _inputs(n=5, w=3, e=2)
    args = (h.requires_grad_(True), vec.requires_grad_(True), pos.clone().requires_grad_(True))

    def f(h, vec, pos):
        return block(h, vec, ei, _edge_vec(pos, ei))

    assert torch.autograd.gradcheck(f, args)

    init = VectorChannelInit(2, n_radial=3, cutoff=3.0).double()
    assert torch.autograd.gradcheck(lambda p: init(ei, _edge_vec(p, ei), 5), (args[2],))


def test_parameter_count_and_default_channels():
    for w, e, r in ((4, 2, 0), (9, 3, 7), (20, 5, 128)):
        block = CartesianVectorBlock(w, vector_channels=e, n_radial=r)
        assert sum(p.numel() for p in block.parameters()) == 7 * w * w + w * e * e + (e + r + 5) * w
    assert [default_vector_channels(w) for w in (1, 3, 4, 32, 48, 120, 160, 721, 800)] == [1, 1, 2, 5, 6, 10, 12, 26, 28]
    assert CartesianVectorBlock(50).vector_channels == 7


def test_mup_mixer_init_and_one_over_e_scaling():
    torch.manual_seed(3)
    for w, e in ((64, 8), (400, 20), (100, 16)):
        block = CartesianVectorBlock(w, vector_channels=e, n_radial=0)
        std = block.lin_mix.weight.std().item()
        assert std == pytest.approx(math.sqrt(min(w, e * e)) / w, rel=0.05)
    # the vector update is X_uv Phi / E: scaling the mixer by E multiplies the update by E
    block = CartesianVectorBlock(6, vector_channels=3, n_radial=0, cutoff=3.0).double()
    h, vec, pos, ei = _inputs()
    ev = _edge_vec(pos, ei)
    _, x1 = block(h, vec, ei, ev)
    with torch.no_grad():
        block.lin_mix.weight.mul_(3.0)
    _, x3 = block(h, vec, ei, ev)
    assert torch.allclose(x3 - vec, 3.0 * (x1 - vec), atol=1e-12)


def test_vector_init_is_equivariant_and_channels_differ():
    torch.manual_seed(4)
    init = VectorChannelInit(4, n_radial=6, cutoff=3.0).double()
    _, _, pos, ei = _inputs()
    d0 = init(ei, _edge_vec(pos, ei), pos.shape[0])
    assert d0.shape == (7, 3, 4)
    q = random_rotation(generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    d1 = init(ei, _edge_vec(pos @ q.T + 1.0, ei), pos.shape[0])
    assert torch.allclose(d1, torch.einsum("ij,njc->nic", q, d0), atol=1e-12)
    assert not torch.allclose(d0[..., 0], d0[..., 1])


def test_isolated_atom_finite_and_float32():
    block = CartesianVectorBlock(4, vector_channels=2, n_radial=3)
    h = torch.randn(3, 4)
    vec = torch.zeros(3, 3, 2)
    ei = torch.tensor([[0], [1]])
    out_h, out_x = block(h, vec, ei, torch.tensor([[1.0, 0.0, 0.0]]))
    assert out_h.dtype == torch.float32 and torch.isfinite(out_h).all() and torch.isfinite(out_x).all()
    assert torch.equal(out_x[2], vec[2])


def test_bad_arguments():
    with pytest.raises(ValueError, match="width"):
        CartesianVectorBlock(0)
    with pytest.raises(ValueError, match="vector_channels"):
        CartesianVectorBlock(4, vector_channels=0)
    with pytest.raises(ValueError, match="n_radial"):
        CartesianVectorBlock(4, n_radial=-1)
    with pytest.raises(ValueError, match="cutoff"):
        CartesianVectorBlock(4, cutoff=float("inf"))
    block = CartesianVectorBlock(4, vector_channels=2)
    ei = torch.zeros(2, 0, dtype=torch.int64)
    with pytest.raises(ValueError, match="vectors must have shape"):
        block(torch.randn(3, 4), torch.randn(3, 3, 3), ei, torch.zeros(0, 3))
    with pytest.raises(ValueError, match="h must have shape"):
        block(torch.randn(3, 5), torch.randn(3, 3, 2), ei, torch.zeros(0, 3))
