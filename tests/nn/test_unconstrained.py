"""UnconstrainedBlock (paper eq. 8-9)."""

from __future__ import annotations

import pytest
import torch

from nnip_scaling.geometry import random_rotation
from nnip_scaling.neighbors import radius_graph
from nnip_scaling.nn import UnconstrainedBlock


def _inputs(n=7, w=5, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=gen, dtype=dtype) * 1.5
    edge_index = radius_graph(pos, torch.zeros(n, dtype=torch.int64), 3.0)
    edge_vec = pos[edge_index[0]] - pos[edge_index[1]]
    h = torch.randn(n, w, generator=gen, dtype=dtype)
    return h, pos, edge_index, edge_vec


def _reference(block, h, edge_index, edge_vec):
    """Eq. 8-9 written literally: phi_m on the concatenation [h_u, h_v, r_uv/|r_uv|, |r_uv|/c] times the
    radial filter W_r rho(|r_uv|), rho_k(r) = u(r) sin(k pi r / c) / r; loop over targets."""
    w, c, n_rad = block.width, block.cutoff, block.n_radial
    weight = torch.cat([block.lin_source.weight, block.lin_target.weight, block.lin_geometry.weight], dim=1)
    assert weight.shape == (w, 2 * w + 4)
    out = h.clone()
    for v in range(h.shape[0]):
        msgs = []
        for k in torch.nonzero(edge_index[1] == v).flatten().tolist():
            u = int(edge_index[0, k])
            r = edge_vec[k]
            d = r.norm()
            z = torch.cat([h[u], h[v], r / d, (d / c).reshape(1)])
            rho = torch.stack([torch.sin(j * torch.pi * d / c) / d for j in range(1, n_rad + 1)])
            x = d / c  # polynomial envelope, p = 5 (DimeNet eq. 8)
            rho = rho * (1 - 21 * x**5 + 35 * x**6 - 15 * x**7) if x < 1 else rho * 0
            filt = block.lin_radial.weight @ rho
            msgs.append(torch.nn.functional.silu(weight @ z + block.lin_target.bias) * filt)
        if msgs:
            out[v] = h[v] + torch.stack(msgs).mean(0)
    return out


def test_matches_literal_equations():
    torch.manual_seed(0)
    block = UnconstrainedBlock(5, cutoff=3.0).double()
    h, _, ei, ev = _inputs()
    assert ei.shape[1] > 0
    assert torch.allclose(block(h, ei, ev), _reference(block, h, ei, ev), rtol=1e-12, atol=1e-12)


def test_parameter_count():
    for w in (1, 4, 33):
        n = sum(p.numel() for p in UnconstrainedBlock(w).parameters())
        assert n == 2 * w * w + 5 * w + 16 * w
        assert sum(p.numel() for p in UnconstrainedBlock(w, n_radial=3).parameters()) == 2 * w * w + 8 * w


def test_radial_filter_vanishes_smoothly_at_cutoff():
    """Messages of an edge at (or beyond) the cutoff are exactly 0; just inside they are tiny."""
    torch.manual_seed(3)
    block = UnconstrainedBlock(8, cutoff=3.0).double()
    h = torch.randn(2, 8, dtype=torch.float64)
    ei = torch.tensor([[0, 0, 0], [1, 1, 1]])
    ev = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.5, 0.0], [0.0, 0.0, 2.99]], dtype=torch.float64)
    m = block.messages(h, ei, ev)
    assert torch.equal(m[:2], torch.zeros_like(m[:2]))
    near = block.messages(h, ei, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64).expand(3, 3))
    assert 0 < m[2].abs().max() < 1e-3 * near[2].abs().max()


def test_bond_resolved_directions_are_linearly_readable():
    """The failure mode of the first version: node features must carry radially weighted neighbour
    directions. A central atom with one neighbour at 1 A along +x and one at 4 A along +y: a block with
    the filter tuned to short distances gives features whose x-dependence dominates."""
    torch.manual_seed(4)
    block = UnconstrainedBlock(32, cutoff=6.0).double()
    h = torch.zeros(3, 32, dtype=torch.float64)
    ei = torch.tensor([[1, 2], [0, 0]])
    def feats(near_dir, far_dir):
        ev = torch.stack([near_dir * 1.0, far_dir * 4.0]).double()
        return block(h, ei, ev)[0]
    ex, ey = torch.tensor([1.0, 0, 0]), torch.tensor([0, 1.0, 0])
    base = feats(ex, ey)
    d_near = (feats(-ex, ey) - base).norm()  # flip the bonded neighbour
    d_far = (feats(ex, -ey) - base).norm()  # flip the far neighbour
    assert d_near > 2 * d_far


def test_gradcheck_float64():
    torch.manual_seed(1)
    block = UnconstrainedBlock(3, cutoff=3.0).double()
    h, pos, ei, _ = _inputs(n=5, w=3)
    pos = pos.clone().requires_grad_(True)
    h = h.clone().requires_grad_(True)

    def f(h, pos):
        return block(h, ei, pos[ei[0]] - pos[ei[1]])

    assert torch.autograd.gradcheck(f, (h, pos))


def test_translation_invariant_and_not_rotation_invariant():
    torch.manual_seed(2)
    block = UnconstrainedBlock(16).double()
    h, pos, ei, ev = _inputs(n=9, w=16)
    out = block(h, ei, ev)
    shifted = (pos + torch.tensor([3.0, -1.0, 2.0], dtype=pos.dtype))
    assert torch.allclose(block(h, ei, shifted[ei[0]] - shifted[ei[1]]), out, atol=1e-12)
    rot = random_rotation(generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out_rot = block(h, ei, ev @ rot.T)
    rel = (out_rot - out).norm() / (out - h).norm()
    assert rel > 1e-2  # by design: raw r_uv enters linearly


def test_isolated_atom_keeps_features_and_float32_runs():
    block = UnconstrainedBlock(4)
    h = torch.randn(3, 4)
    ei = torch.tensor([[0], [1]])
    ev = torch.tensor([[1.0, 0.0, 0.0]])
    out = block(h, ei, ev)
    assert out.dtype == torch.float32
    assert torch.equal(out[2], h[2]) and torch.equal(out[0], h[0])
    assert not torch.equal(out[1], h[1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="width"):
        UnconstrainedBlock(0)
    with pytest.raises(ValueError, match="cutoff"):
        UnconstrainedBlock(4, cutoff=0.0)
    with pytest.raises(ValueError, match="n_radial"):
        UnconstrainedBlock(4, n_radial=0)
    with pytest.raises(ValueError, match="h must have shape"):
        UnconstrainedBlock(4)(torch.randn(3, 5), torch.zeros(2, 0, dtype=torch.int64), torch.zeros(0, 3))
