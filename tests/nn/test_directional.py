"""DirectionalBlock: aggregations equal explicit triplet/quadruplet sums, gradcheck, invariance,
degenerate geometries, four-body dependence, parameter count."""

from __future__ import annotations

import math

import pytest
import torch

from nnip_scaling.geometry import random_reflection, random_rotation
from nnip_scaling.geometry.angles import (
    bond_angle_cos,
    circular_basis,
    quadruplets,
    spherical_basis,
    spherical_basis_size,
    triplets,
)
from nnip_scaling.neighbors import radius_graph
from nnip_scaling.nn import DirectionalBlock
from nnip_scaling.nn.directional import (
    DirectionalBasis,
    DirectionalOutput,
    build_directional_index,
    quadruplet_aggregate,
    rms_normalise,
    soft_normalise,
    triplet_aggregate,
)

F64 = torch.float64


def _molecule(n: int, seed: int, scale: float = 1.6) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    while True:
        pos = torch.randn(n, 3, generator=gen, dtype=F64) * scale
        d = torch.cdist(pos, pos) + torch.eye(n, dtype=F64) * 10
        if float(d.min()) > 0.8:
            return pos


def _setup(pos, *, cutoff=3.5, max_neighbors=None, q_cutoff=3.0, q_cap=3, l_q=3, **basis_kw):
    ei = radius_graph(pos, None, cutoff, max_neighbors)
    vec = pos[ei[0]] - pos[ei[1]]
    index = build_directional_index(
        ei, vec.norm(dim=-1), pos.shape[0], quadruplet_cutoff=q_cutoff, quadruplet_max_neighbors=q_cap
    )
    torch.manual_seed(0)
    basis = DirectionalBasis(
        cutoff, num_radial=8, num_spherical=4, basis_dim=5, quadruplet_cutoff=q_cutoff,
        quadruplet_spherical=l_q, sbf_dim=3, **basis_kw,
    ).to(F64)
    return ei, vec, index, basis


# ----------------------------------------------------------------------------- aggregations
@pytest.mark.parametrize("seed,max_neighbors", [(0, None), (1, 4), (2, 3)])
def test_triplet_aggregate_equals_explicit_sum(seed, max_neighbors):
    pos = _molecule(9, seed)
    ei, vec, index, basis = _setup(pos, max_neighbors=max_neighbors)
    feats = basis(vec, index)
    x = torch.randn(ei.shape[1], 6, dtype=F64, generator=torch.Generator().manual_seed(seed))
    got = triplet_aggregate(x, feats)
    t = triplets(ei, pos.shape[0])
    assert t.n_triplets > 0
    cb = circular_basis(bond_angle_cos(vec[t.edge_out], vec[t.edge_in]), n=4)  # [T, L]
    ref = torch.zeros(ei.shape[1], 4, 6, dtype=F64).index_add_(0, t.edge_out, cb[:, :, None] * x[t.edge_in][:, None, :])
    ref = ref * feats.atom_norm[ei[1]][:, None, None]
    assert torch.allclose(got, ref, atol=1e-12)


@pytest.mark.parametrize("seed,max_neighbors,q_cap,l_q", [(0, None, 3, 3), (1, 4, 2, 4), (3, 5, None, 2), (4, 3, 3, 1)])
def test_quadruplet_aggregate_equals_explicit_sum(seed, max_neighbors, q_cap, l_q):
    """The factorised sum (frames, j = u correction) equals the direct sum over quadruplets()."""
    pos = _molecule(10, seed)
    ei, vec, index, basis = _setup(pos, max_neighbors=max_neighbors, q_cap=q_cap, l_q=l_q)
    feats = basis(vec, index)
    q = index.quadruplets
    d = index.max_degree
    y = torch.randn(q.n_edges, d, 5, dtype=F64, generator=torch.Generator().manual_seed(seed))
    got = quadruplet_aggregate(y, feats)
    quads = quadruplets(ei, ei[:, q.edge], pos.shape[0])
    assert quads.n_quadruplets > 0
    if max_neighbors is not None:  # capped graphs are asymmetric: some j = u corrections are absent
        assert bool((index.reverse < 0).any())
    sb = spherical_basis(vec[quads.edge_uv], vec[q.edge[quads.edge_kv]], vec[quads.edge_jk], n=l_q)
    slot = index.table.slot[quads.edge_jk]
    contrib = sb[:, :, None] * y[quads.edge_kv, slot][:, None, :]
    ref = torch.zeros(ei.shape[1], spherical_basis_size(l_q), 5, dtype=F64).index_add_(0, quads.edge_uv, contrib)
    ref = ref * feats.quadruplets.norm[:, None, None]
    assert torch.allclose(got, ref, atol=1e-12)


def test_quadruplet_aggregate_is_frame_independent():
    """Rotating the molecule changes every frame (an axis choice per middle edge) but not the sum."""
    pos = _molecule(8, 5)
    _ei, vec, index, basis = _setup(pos)
    y = torch.randn(index.quadruplets.n_edges, index.max_degree, 4, dtype=F64)
    ref = quadruplet_aggregate(y, basis(vec, index))
    gen = torch.Generator().manual_seed(1)
    for q in (random_rotation(generator=gen, dtype=F64), random_reflection(generator=gen, dtype=F64)):
        assert torch.allclose(quadruplet_aggregate(y, basis(vec @ q.T, index)), ref, atol=1e-12)


# ----------------------------------------------------------------------------- block
def _block_fn(pos0, *, width=4, quadruplets_=True, seed=0, cutoff=3.0, q_cutoff=2.6):
    """(positions, h) -> (h', m', x_E, x_F) through basis, edge embedding, one block and an output
    block; the index is built once from ``pos0``."""
    ei, _, index, basis = _setup(pos0, cutoff=cutoff, q_cutoff=q_cutoff, q_cap=3)
    torch.manual_seed(seed)
    block = DirectionalBlock(width, basis_dim=5, triplet_dim=3, quadruplets=quadruplets_, quadruplet_dim=3, sbf_dim=3).to(F64)
    out = DirectionalOutput(width, basis_dim=5).to(F64)
    w_edge = torch.randn(2 * width + 8, width, dtype=F64) / math.sqrt(2 * width + 8)

    def fn(pos, h):
        vec = pos[ei[0]] - pos[ei[1]]
        feats = basis(vec, index)
        m = torch.tanh(torch.cat([h[ei[0]], h[ei[1]], feats.rbf], -1) @ w_edge)
        h2, m2 = block(h, m, feats)
        x_e, x_f = out(h2, m2, feats)
        return h2, m2, x_e, x_f

    return fn, ei


def _projected(fn, n_out=3):
    """A few random projections of all outputs (gradcheck's cost grows with the output size)."""
    gen = torch.Generator().manual_seed(11)
    cache: dict[int, torch.Tensor] = {}

    def g(pos, h):
        outs = fn(pos, h)
        vals = []
        for i, o in enumerate(outs):
            if i not in cache:
                cache[i] = torch.randn(n_out, *o.shape, generator=gen, dtype=F64)
            vals.append((cache[i] * o).flatten(1).sum(1))
        return torch.cat(vals)

    return g


def test_block_gradcheck_float64():
    pos = _molecule(5, 7, scale=1.0).requires_grad_()
    fn, _ = _block_fn(pos.detach())
    h = torch.randn(5, 4, dtype=F64, generator=torch.Generator().manual_seed(2)).requires_grad_()
    assert torch.autograd.gradcheck(_projected(fn), (pos, h), atol=1e-6)


def test_block_outputs_are_o3_invariant():
    pos = _molecule(7, 8, scale=1.2)
    fn, _ = _block_fn(pos)
    h = torch.randn(7, 4, dtype=F64)
    ref = fn(pos, h)
    gen = torch.Generator().manual_seed(3)
    for q in (random_rotation(generator=gen, dtype=F64), random_reflection(generator=gen, dtype=F64)):
        out = fn(pos @ q.T + torch.tensor([1.0, -2.0, 0.5], dtype=F64), h)
        for a, b in zip(out, ref):
            assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize(
    "pos",
    [
        [[0.0, 0, 0], [1.1, 0, 0], [2.3, 0, 0], [3.2, 0, 0]],  # linear chain: phi = 0 and pi, dihedrals undefined
        [[0.0, 0, 0], [1.1, 0, 0], [1.6, 1.0, 0], [2.7, 1.0, 0], [-0.5, -1.0, 0]],  # planar: omega = 0, pi
        [[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [2.0, 1.0, 0.0], [2.0, 1.0, 1.0]],  # collinear v-k-j, right angles
    ],
)
def test_block_finite_values_and_gradients_at_degenerate_geometries(pos):
    pos = torch.tensor(pos, dtype=F64)
    fn, _ = _block_fn(pos)
    p = pos.clone().requires_grad_()
    h = torch.randn(pos.shape[0], 4, dtype=F64).requires_grad_()
    outs = fn(p, h)
    assert all(torch.isfinite(o).all() for o in outs)
    total = sum((o * o).sum() for o in outs)
    gp, gh = torch.autograd.grad(total, (p, h))
    assert torch.isfinite(gp).all() and torch.isfinite(gh).all()
    assert torch.autograd.gradcheck(_projected(fn), (p, h), atol=1e-6)


def _chain(omega: float) -> torch.Tensor:
    """u - v - k - j with bonds 1 Å, angles 120 degrees and dihedral omega: non-bonded distances are
    >= 1.73 Å (u-k, v-j) and >= 2 Å (u-j, cis)."""
    phi = math.radians(120)
    v = torch.zeros(3, dtype=F64)
    k = torch.tensor([1.0, 0, 0], dtype=F64)
    u = torch.tensor([math.cos(phi), math.sin(phi), 0], dtype=F64)
    j = k + torch.tensor([-math.cos(phi), math.sin(phi) * math.cos(omega), math.sin(phi) * math.sin(omega)], dtype=F64)
    return torch.stack([u, v, k, j])


def test_quadruplets_make_the_block_four_body():
    """With a 1.6 Å cutoff a chain's only geometry beyond bonds and angles is the dihedral: the block
    with quadruplets sees it, the block without does not."""
    outs = {}
    for quads in (True, False):
        vals = []
        for omega in (0.3, 1.2, 2.8):
            pos = _chain(omega)
            ei = radius_graph(pos, None, 1.6)
            assert ei.shape[1] == 6  # three bonds, both directions
            fn, _ = _block_fn(pos, quadruplets_=quads, cutoff=1.6, q_cutoff=1.6)
            h = torch.linspace(-1, 1, 16, dtype=F64).reshape(4, 4)
            vals.append(torch.cat([t.flatten() for t in fn(pos, h)]))
        outs[quads] = vals
    assert all(torch.allclose(outs[False][0], v, atol=1e-12) for v in outs[False][1:])
    assert all((outs[True][0] - v).abs().max() > 1e-6 for v in outs[True][1:])


def test_block_parameter_count():
    for w, quads in ((8, True), (16, False), (5, True)):
        block = DirectionalBlock(w, basis_dim=16, triplet_dim=32, quadruplets=quads, quadruplet_dim=16, sbf_dim=8)
        n = sum(p.numel() for p in block.parameters())
        base = 21 * w * w + (2 * 16 + 3 * 32) * w + 16 * 32 * 32
        extra = w * w + (16 + 3 * 16) * w + 16 * 16 + 8 * 16 * 16
        assert n == base + (extra if quads else 0)


def test_normalisations():
    x = torch.randn(100, 32, dtype=F64) * 50
    assert torch.allclose(rms_normalise(x).pow(2).mean(-1), torch.ones(100, dtype=F64), atol=1e-9)
    y = soft_normalise(x)
    assert bool((y.pow(2).mean(-1) < 1).all()) and bool((y.norm(dim=-1) <= x.norm(dim=-1)).all())
    small = x * 1e-6
    assert torch.allclose(soft_normalise(small), small, rtol=1e-8)  # never amplifies a fading input


def test_block_argument_errors():
    with pytest.raises(ValueError, match="width"):
        DirectionalBlock(0)
    with pytest.raises(ValueError, match="triplet_dim"):
        DirectionalBlock(4, triplet_dim=-1)
    with pytest.raises(ValueError, match="quadruplet_cutoff"):
        DirectionalBasis(3.0, quadruplet_cutoff=4.0)
    pos = _molecule(5, 9)
    ei = radius_graph(pos, None, 3.0)
    index = build_directional_index(ei, (pos[ei[0]] - pos[ei[1]]).norm(dim=-1), 5, quadruplets=False)
    with pytest.raises(AssertionError, match="quadruplets"):
        DirectionalBasis(3.0).to(F64)(pos[ei[0]] - pos[ei[1]], index)
