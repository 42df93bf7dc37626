"""Triplet/quadruplet indices vs brute-force enumeration; bond angles, dihedrals and their bases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import eval_legendre, lpmv

from nnip_scaling.geometry import random_reflection, random_rotation
from nnip_scaling.geometry.angles import (
    bond_angle,
    bond_angle_cos,
    circular_basis,
    dihedral_angle,
    find_edges,
    neighbor_table,
    quadruplets,
    reverse_edges,
    select_edges,
    spherical_basis,
    spherical_basis_size,
    triplets,
)
from nnip_scaling.neighbors import radius_graph

F64 = torch.float64


# ----------------------------------------------------------------------------- random graphs
@st.composite
def edge_sets(draw, max_atoms: int = 7):
    """A random directed graph without self loops or repeated edges, edges in random order."""
    n = draw(st.integers(1, max_atoms))
    pairs = [(u, v) for u in range(n) for v in range(n) if u != v]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs))) if pairs else []
    ei = torch.tensor(chosen, dtype=torch.int64).reshape(-1, 2).T.contiguous()
    return n, ei


def brute_triplets(ei: torch.Tensor) -> list[tuple[int, int]]:
    e = ei.T.tolist()
    return sorted((a, b) for b in range(len(e)) for a in range(len(e)) if a != b and e[a][1] == e[b][1])


def brute_quadruplets(ei: torch.Tensor, qei: torch.Tensor) -> list[tuple[int, int, int]]:
    e, q = ei.T.tolist(), qei.T.tolist()
    out = []
    for uv, (u, v) in enumerate(e):
        for kv, (k, v2) in enumerate(q):
            if v2 != v or k == u:
                continue
            for jk, (j, k2) in enumerate(e):
                if k2 == k and j != v and j != u:
                    out.append((jk, kv, uv))
    return sorted(out)


@settings(max_examples=30, deadline=None)
@given(edge_sets())
def test_triplets_equal_brute_force(graph):
    n, ei = graph
    t = triplets(ei, n)
    assert sorted(zip(t.edge_in.tolist(), t.edge_out.tolist())) == brute_triplets(ei)
    assert bool((t.edge_out[1:] >= t.edge_out[:-1]).all())  # grouped by output edge
    deg = torch.bincount(ei[1], minlength=n)
    assert t.n_triplets == int((deg * (deg - 1)).sum())


@settings(max_examples=30, deadline=None)
@given(edge_sets(), st.data())
def test_quadruplets_equal_brute_force(graph, data):
    n, ei = graph
    # the quadruplet graph: a random subset of the embedding edges, or an unrelated random graph
    if data.draw(st.booleans()) and ei.shape[1]:
        keep = data.draw(st.lists(st.booleans(), min_size=ei.shape[1], max_size=ei.shape[1]))
        qei = ei[:, torch.tensor(keep)]
    else:
        _, qei = data.draw(edge_sets(max_atoms=n).filter(lambda g: g[0] == n)) if n > 1 else (n, ei)
    q = quadruplets(ei, qei, n)
    got = sorted(zip(q.edge_jk.tolist(), q.edge_kv.tolist(), q.edge_uv.tolist()))
    assert got == brute_quadruplets(ei, qei)
    assert bool((q.edge_uv[1:] >= q.edge_uv[:-1]).all())


def test_indices_on_radius_graph_of_a_molecule():
    gen = torch.Generator().manual_seed(3)
    pos = torch.randn(9, 3, generator=gen, dtype=F64) * 1.5
    ei = radius_graph(pos, None, 2.5)
    qei = radius_graph(pos, None, 2.0, max_neighbors=2)
    assert triplets(ei, 9).n_triplets == len(brute_triplets(ei))
    q = quadruplets(ei, qei, 9)
    assert q.n_quadruplets == len(brute_quadruplets(ei, qei)) > 0
    # every quadruplet is a chain j -> k -> v <- u of four distinct atoms
    j, k = ei[0, q.edge_jk], ei[1, q.edge_jk]
    u, v = ei[0, q.edge_uv], ei[1, q.edge_uv]
    assert bool((qei[0, q.edge_kv] == k).all()) and bool((qei[1, q.edge_kv] == v).all())
    atoms = torch.stack([j, k, v, u], 1)
    assert bool((atoms.sort(1).values.diff(dim=1) > 0).all())


def test_empty_and_single_atom_graphs():
    empty = torch.empty(2, 0, dtype=torch.int64)
    assert triplets(empty, 1).n_triplets == 0
    assert quadruplets(empty, empty, 1).n_quadruplets == 0
    assert triplets(empty, 0).n_triplets == 0
    pair = torch.tensor([[0, 1], [1, 0]])
    assert triplets(pair, 2).n_triplets == 0
    assert quadruplets(pair, pair, 2).n_quadruplets == 0
    three = torch.tensor([[1, 2, 0, 2, 0, 1], [0, 0, 1, 1, 2, 2]])
    assert triplets(three, 3).n_triplets == 6
    assert quadruplets(three, three, 3).n_quadruplets == 0  # j would have to be u or v


@settings(max_examples=25, deadline=None)
@given(edge_sets())
def test_neighbor_table_find_and_reverse(graph):
    n, ei = graph
    for by, row in (("target", 1), ("source", 0)):
        t = neighbor_table(ei, n, by=by)
        e = ei.shape[1]
        ids = torch.arange(e)
        assert torch.equal(t.edge[ei[row], t.slot], ids)
        assert torch.equal(t.degree, torch.bincount(ei[row], minlength=n))
        assert int(t.mask.sum()) == e
        assert bool((t.edge[~t.mask] == e).all())
        assert torch.equal(t.mask.sum(1), t.degree)
    edges = {tuple(p): i for i, p in enumerate(ei.T.tolist())}
    rev = reverse_edges(ei, n)
    assert rev.tolist() == [edges.get((v, u), -1) for u, v in ei.T.tolist()]
    src = torch.arange(n).repeat_interleave(n)
    tgt = torch.arange(n).repeat(n)
    found = find_edges(ei, n, src, tgt)
    assert found.tolist() == [edges.get((a, b), -1) for a, b in zip(src.tolist(), tgt.tolist())]


@settings(max_examples=25, deadline=None)
@given(edge_sets(), st.integers(1, 4), st.floats(0.5, 3.0), st.integers(0, 2**31 - 1))
def test_select_edges_matches_brute_force(graph, cap, cutoff, seed):
    n, ei = graph
    gen = torch.Generator().manual_seed(seed)
    # lengths on a coarse grid so that ties are common
    length = torch.randint(1, 8, (ei.shape[1],), generator=gen).to(F64) * 0.5
    tol = 1e-4
    got = select_edges(ei, length, n, cutoff=cutoff, max_neighbors=cap, tie_tolerance=tol).tolist()
    want = []
    for e, (u, v) in enumerate(ei.T.tolist()):
        if length[e] > cutoff:
            continue
        into = sorted(float(length[f]) for f, (_, w) in enumerate(ei.T.tolist()) if w == v and length[f] <= cutoff)
        kth = into[cap - 1] if len(into) > cap else math.inf
        if length[e] <= kth + tol:
            want.append(e)
    assert got == want
    assert select_edges(ei, length, n).tolist() == list(range(ei.shape[1]))


def test_select_edges_keeps_symmetric_ties_and_is_order_independent():
    # atom 0 with four neighbours at the same distance: a cap of 2 keeps all four (ties)
    ei = torch.tensor([[1, 2, 3, 4], [0, 0, 0, 0]])
    length = torch.tensor([1.0, 1.0, 1.0 + 1e-9, 1.0], dtype=F64)
    assert select_edges(ei, length, 5, max_neighbors=2).tolist() == [0, 1, 2, 3]
    assert select_edges(ei, length, 5, max_neighbors=2, tie_tolerance=0.0).tolist() == [0, 1, 3]
    # a different edge order selects the same edges (no index tie-break)
    perm = torch.tensor([3, 1, 0, 2])
    got = select_edges(ei[:, perm], length[perm], 5, max_neighbors=3)
    assert sorted(perm[got].tolist()) == [0, 1, 2, 3]


def test_index_argument_errors():
    ei = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(TypeError, match="edge_index"):
        triplets(ei.to(torch.int32), 2)
    with pytest.raises(ValueError, match="edge_index"):
        triplets(ei[:1], 2)
    with pytest.raises(ValueError, match="n_atoms"):
        triplets(ei, 1)
    with pytest.raises(ValueError, match="quadruplet_edge_index"):
        quadruplets(ei, torch.tensor([[0], [5]]), 2)
    with pytest.raises(ValueError, match="by"):
        neighbor_table(ei, 2, by="middle")
    with pytest.raises(ValueError, match="edge_length"):
        select_edges(ei, torch.ones(3), 2)
    with pytest.raises(ValueError, match="max_neighbors"):
        select_edges(ei, torch.ones(2), 2, max_neighbors=0)


# ----------------------------------------------------------------------------- angles
def _rand(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_bond_angle_matches_arccos_and_handles_endpoints():
    a, b = _rand((50, 3), 0), _rand((50, 3), 1)
    ref = np.arccos(np.clip(np.sum(a.numpy() * b.numpy(), 1) / np.linalg.norm(a.numpy(), axis=1)
                            / np.linalg.norm(b.numpy(), axis=1), -1, 1))
    assert np.allclose(bond_angle(a, b).numpy(), ref, atol=1e-12)
    assert np.allclose(bond_angle_cos(a, b).numpy(), np.cos(ref), atol=1e-12)
    x = torch.tensor([[1.0, 0.0, 0.0]], dtype=F64)
    assert float(bond_angle(x, 2.5 * x)) == 0.0
    assert abs(float(bond_angle(x, -0.3 * x)) - math.pi) < 1e-15
    assert float(bond_angle_cos(x, 3 * x)) == 1.0 and float(bond_angle_cos(x, -x)) == -1.0


@pytest.mark.parametrize("fn", [bond_angle, bond_angle_cos])
def test_bond_angle_gradients_finite_at_zero_and_pi(fn):
    for sign in (1.0, -1.0):
        a = torch.tensor([[0.3, -1.2, 0.7]], dtype=F64, requires_grad=True)
        b = (sign * 1.7 * a).detach().requires_grad_(True)
        ga, gb = torch.autograd.grad(fn(a, b).sum(), (a, b))
        assert torch.isfinite(ga).all() and torch.isfinite(gb).all()


def test_bond_angle_gradcheck_generic():
    a, b = _rand((6, 3), 2).requires_grad_(), _rand((6, 3), 3).requires_grad_()
    assert torch.autograd.gradcheck(bond_angle, (a, b))
    assert torch.autograd.gradcheck(bond_angle_cos, (a, b))


def _chain(dihedral: float, *, phi1=1.9, phi2=2.0):
    """Vectors (x_u - x_v, x_k - x_v, x_j - x_k) of a chain u-v-k-j with the given dihedral."""
    b = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    a = 1.3 * torch.tensor([math.cos(phi1), math.sin(phi1), 0.0], dtype=F64)
    # at k the angle between (x_v - x_k) = -b and (x_j - x_k) is phi2
    d = torch.tensor([-math.cos(phi2), math.sin(phi2) * math.cos(dihedral), math.sin(phi2) * math.sin(dihedral)],
                     dtype=F64) * 0.9
    return a[None], 1.5 * b[None], d[None]


@pytest.mark.parametrize("omega", [0.0, 0.4, math.pi / 2, 2.5, math.pi, -1.0])
def test_dihedral_of_constructed_chains(omega):
    got = float(dihedral_angle(*_chain(omega)))
    assert abs(got - abs(omega)) < 1e-12  # parity-free: -1.0 and +1.0 give the same angle


def test_dihedral_is_o3_invariant_and_cis_zero():
    a, b, d = _rand((40, 3), 4), _rand((40, 3), 5), _rand((40, 3), 6)
    w = dihedral_angle(a, b, d)
    assert bool(((w >= 0) & (w <= math.pi)).all())
    gen = torch.Generator().manual_seed(7)
    for q in (random_rotation(generator=gen, dtype=F64), random_reflection(generator=gen, dtype=F64)):
        assert torch.allclose(dihedral_angle(a @ q.T, b @ q.T, d @ q.T), w, atol=1e-12)
    # swapping the roles of the two ends gives the same dihedral
    assert torch.allclose(dihedral_angle(d, -b, a), w, atol=1e-12)


def test_dihedral_degenerate_is_finite():
    for vecs in (
        (torch.tensor([[1.0, 0, 0]]), torch.tensor([[2.0, 0, 0]]), torch.tensor([[0.0, 1, 0]])),  # u, v, k collinear
        (torch.tensor([[0.0, 1, 0]]), torch.tensor([[2.0, 0, 0]]), torch.tensor([[1.0, 0, 0]])),  # v, k, j collinear
        (torch.tensor([[0.0, 1, 0]]), torch.tensor([[2.0, 0, 0]]), torch.tensor([[-1.0, 1, 0]])),  # planar cis
        (torch.tensor([[0.0, 1, 0]]), torch.tensor([[2.0, 0, 0]]), torch.tensor([[-1.0, -1, 0]])),  # planar trans
    ):
        vs = [v.to(F64).requires_grad_() for v in vecs]
        w = dihedral_angle(*vs)
        grads = torch.autograd.grad(w.sum(), vs)
        assert torch.isfinite(w).all() and all(torch.isfinite(g).all() for g in grads)


def test_dihedral_gradcheck_generic():
    a, b, d = (_rand((5, 3), s).requires_grad_() for s in (8, 9, 10))
    assert torch.autograd.gradcheck(dihedral_angle, (a, b, d))


# ----------------------------------------------------------------------------- bases
def test_circular_basis_is_normalised_legendre():
    x = torch.linspace(-1, 1, 41, dtype=F64)
    cb = circular_basis(x, n=7)
    ref = np.stack([math.sqrt(2 * l + 1) * eval_legendre(l, x.numpy()) for l in range(7)], -1)
    assert np.allclose(cb.numpy(), ref, atol=1e-12)
    # component normalisation: mean square 1 for cos(phi) uniform on [-1, 1] (Gauss-Legendre, exact)
    nodes, weights = np.polynomial.legendre.leggauss(20)
    cbq = circular_basis(torch.tensor(nodes), n=7).numpy()
    assert np.allclose((weights[:, None] * cbq**2).sum(0) / 2.0, 1.0, atol=1e-12)
    assert circular_basis(torch.tensor([0.3]), n=1).shape == (1, 1)


def test_circular_basis_gradcheck_at_endpoints():
    x = torch.tensor([-1.0, -0.999, 0.2, 1.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: circular_basis(t, n=6), (x,))


def _reference_spherical(a, b, d, n):
    phi1 = bond_angle(a, b).numpy()
    phi2 = bond_angle(-b, d).numpy()
    om = dihedral_angle(a, b, d).numpy()
    out = []
    for l in range(n):
        for m in range(l + 1):
            k = math.sqrt((2 * l + 1) * math.factorial(l - m) / math.factorial(l + m)) * (math.sqrt(2) if m else 1)
            out.append(k * (-1) ** m * lpmv(m, l, np.cos(phi1)) * np.cos(m * om) * np.sin(phi2) ** m)
    return np.stack(out, -1)


def test_spherical_basis_matches_associated_legendre_times_cos():
    a, b, d = _rand((30, 3), 11), _rand((30, 3), 12), _rand((30, 3), 13)
    sb = spherical_basis(a, b, d, n=5)
    assert sb.shape == (30, spherical_basis_size(5)) == (30, 15)
    assert np.allclose(sb.numpy(), _reference_spherical(a, b, d, 5), atol=1e-12)


def test_spherical_basis_component_normalised_on_sphere():
    # phi2 = 90 degrees (sin = 1): mean square over (phi1, omega) uniform on the sphere is 1
    nodes, weights = np.polynomial.legendre.leggauss(16)
    oms = (np.arange(32) + 0.5) * 2 * np.pi / 32
    c1 = np.repeat(nodes, 32)
    om = np.tile(oms, 16)
    s1 = np.sqrt(1 - c1**2)
    b = torch.tensor([[1.0, 0, 0]], dtype=F64).expand(c1.size, 3)
    a = torch.tensor(np.stack([c1, s1, np.zeros_like(c1)], -1))
    d = torch.tensor(np.stack([np.zeros_like(c1), np.cos(om), np.sin(om)], -1))
    sb = spherical_basis(a, b, d, n=4).numpy()
    w = np.repeat(weights, 32) / (2 * 32)
    assert np.allclose((w[:, None] * sb**2).sum(0), 1.0, atol=1e-10)


def test_spherical_basis_invariant_under_o3():
    a, b, d = _rand((20, 3), 14), _rand((20, 3), 15), _rand((20, 3), 16)
    sb = spherical_basis(a, b, d, n=4)
    gen = torch.Generator().manual_seed(17)
    for q in (random_rotation(generator=gen, dtype=F64), random_reflection(generator=gen, dtype=F64)):
        assert torch.allclose(spherical_basis(a @ q.T, b @ q.T, d @ q.T, n=4), sb, atol=1e-12)


def test_spherical_basis_smooth_through_collinear_geometries():
    """At collinear v-k-j the dihedral is undefined; the basis is continuous there (m > 0 parts vanish)
    and differentiable (gradcheck passes exactly at the degenerate point)."""
    b = torch.tensor([[1.5, 0.0, 0.0]], dtype=F64)
    a = torch.tensor([[0.4, 1.1, 0.3]], dtype=F64)
    d_col = torch.tensor([[1.0, 0.0, 0.0]], dtype=F64)  # j beyond k on the axis: v, k, j collinear
    at = spherical_basis(a, b, d_col, n=4)
    for eps in (1e-4, 1e-6):
        for direction in ([0, 1, 0], [0, 0.6, -0.8]):
            near = spherical_basis(a, b, d_col + eps * torch.tensor([direction], dtype=F64), n=4)
            assert torch.allclose(near, at, atol=10 * eps)
    inputs = tuple(t.clone().requires_grad_() for t in (a, b, d_col))
    assert torch.autograd.gradcheck(lambda x, y, z: spherical_basis(x, y, z, n=4), inputs)
    # u, v, k collinear too
    inputs = tuple(t.clone().requires_grad_() for t in (torch.tensor([[-2.0, 0, 0]], dtype=F64), b, a))
    assert torch.autograd.gradcheck(lambda x, y, z: spherical_basis(x, y, z, n=4), inputs)


def test_bases_run_in_float32():
    a, b, d = (_rand((8, 3), s).float() for s in (18, 19, 20))
    assert spherical_basis(a, b, d, n=3).dtype == torch.float32
    assert circular_basis(bond_angle_cos(a, b), n=3).dtype == torch.float32
    assert torch.allclose(spherical_basis(a, b, d, n=3).double(), spherical_basis(a.double(), b.double(), d.double(), n=3), atol=1e-5)


def test_geometry_argument_errors():
    a = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        bond_angle(a, torch.randn(4, 2))
    with pytest.raises(ValueError, match="same shape"):
        dihedral_angle(a, a, torch.randn(5, 3))
    with pytest.raises(TypeError, match="vec_a"):
        bond_angle_cos(a.long(), a)
    with pytest.raises(ValueError, match="n"):
        circular_basis(torch.zeros(3), n=0)
    with pytest.raises(TypeError, match="n"):
        spherical_basis(a, a, a, n=2.0)
