r"""Triplets, quadruplets, bond angles, dihedrals and their bases (pure functions).

This module holds the geometry of directional message passing (paper appendix C.2, eq. 10; GemNet,
Gasteiger et al. 2021; GemNet-OC, Gasteiger et al. 2022). Conventions (docs/models/directional.md):

* an edge ``e = (u -> v)`` has ``edge_index[:, e] = (u, v)`` (row 0 source, row 1 target) and
  ``edge_vec[e] = x_u - x_v`` (:math:`r_{uv}`, paper eq. 9);
* a **triplet** ``k -> v <- u`` is a pair of distinct edges into the same target ``v``: the *input*
  edge ``k -> v`` and the *output* edge ``u -> v`` (so :math:`k \ne u`); its **bond angle** is
  :math:`\varphi_{uvk} = \angle(x_u - x_v,\; x_k - x_v)`;
* a **quadruplet** ``j -> k -> v <- u`` chains an edge ``j -> k`` of the embedding graph, an edge
  ``k -> v`` of the (usually sparser) quadruplet graph and an output edge ``u -> v`` of the embedding
  graph, with :math:`k \ne u`, :math:`j \ne v` and :math:`j \ne u` (paper eq. 10:
  :math:`k \in \mathcal N(v)\setminus\{u\}`, :math:`j \in \mathcal N(k)\setminus\{u, v\}`); its
  **dihedral** :math:`\omega_{uvkj} \in [0, \pi]` is the angle between the planes :math:`(u, v, k)`
  and :math:`(v, k, j)`, 0 for the *cis* arrangement. It is parity-free: a reflection leaves it
  unchanged (GemNet-OC's "half angle" convention), so models built on it are O(3)-invariant.

Index construction is vectorised torch (sort, ``bincount``, ``repeat_interleave``, ``searchsorted``);
nothing loops over edges, and indices keep the caller's edge order (edges need not be sorted).

The bases are *component normalised*: every function has mean square 1 over isotropic directions, so
basis embeddings initialised with variance ``1/fan_in`` start at unit variance (the explicit
normalisation that replaces GemNet-OC's fitted scale factors, docs/models/directional.md).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from nnip_scaling.geometry._checks import check_float_tensor, check_int, check_last_dims

__all__ = [
    "NeighborTable",
    "QuadrupletIndex",
    "TripletIndex",
    "bond_angle",
    "bond_angle_cos",
    "circular_basis",
    "dihedral_angle",
    "find_edges",
    "legendre_derivative_table",
    "neighbor_table",
    "quadruplets",
    "reverse_edges",
    "select_edges",
    "spherical_basis",
    "spherical_basis_size",
    "triplets",
]


# ============================================================================ index construction
@dataclass(frozen=True, eq=False)
class TripletIndex:
    """Triplets ``k -> v <- u`` as pairs of edge ids (see :func:`triplets`).

    Attributes:
        edge_in: ``[T]`` int64 id of the input edge ``k -> v``.
        edge_out: ``[T]`` int64 id of the output edge ``u -> v``; non-decreasing.
    """

    edge_in: Tensor
    edge_out: Tensor

    @property
    def n_triplets(self) -> int:
        return int(self.edge_out.shape[0])


@dataclass(frozen=True, eq=False)
class QuadrupletIndex:
    """Quadruplets ``j -> k -> v <- u`` as triples of edge ids (see :func:`quadruplets`).

    Attributes:
        edge_jk: ``[Q]`` int64 id of ``j -> k`` in the embedding graph.
        edge_kv: ``[Q]`` int64 id of ``k -> v`` in the quadruplet graph.
        edge_uv: ``[Q]`` int64 id of the output edge ``u -> v`` in the embedding graph; non-decreasing.
    """

    edge_jk: Tensor
    edge_kv: Tensor
    edge_uv: Tensor

    @property
    def n_quadruplets(self) -> int:
        return int(self.edge_uv.shape[0])


@dataclass(frozen=True, eq=False)
class NeighborTable:
    """Dense (padded) layout of the edges grouped by one endpoint (see :func:`neighbor_table`).

    Attributes:
        edge: ``[n_atoms, max_degree]`` int64; ``edge[v, s]`` is the id of the ``s``-th edge of atom
            ``v`` (in increasing edge id), or ``n_edges`` (one past the last edge, a padding slot that
            callers map to a zero row) for ``s >= degree[v]``.
        slot: ``[n_edges]`` int64 position of each edge in its atom's row: ``edge[atom[e], slot[e]] == e``.
        degree: ``[n_atoms]`` int64 number of edges of each atom.
    """

    edge: Tensor
    slot: Tensor
    degree: Tensor

    @property
    def max_degree(self) -> int:
        return int(self.edge.shape[1])

    @property
    def mask(self) -> Tensor:
        """``[n_atoms, max_degree]`` bool, ``True`` where a slot holds an edge."""
        return self.edge < self.slot.shape[0]


def _check_edge_index(name: str, edge_index: Tensor, n_atoms: int) -> Tensor:
    if not isinstance(edge_index, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(edge_index).__name__}")
    if edge_index.dtype != torch.int64:
        raise TypeError(f"{name} must be int64, got {edge_index.dtype}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"{name} must have shape [2, n_edges], got {list(edge_index.shape)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n_atoms):
        raise ValueError(f"{name} values must lie in [0, n_atoms) = [0, {n_atoms})")
    return edge_index


def _check_n_atoms(n_atoms: int) -> int:
    return check_int("n_atoms", n_atoms, minimum=0)


def _match(key_left: Tensor, key_right: Tensor, n_keys: int) -> tuple[Tensor, Tensor]:
    """All pairs ``(i, j)`` with ``key_left[i] == key_right[j]``, grouped by ``j`` (ascending), and
    within a group by ``i`` (ascending). Keys lie in ``[0, n_keys)``. CSR join: sort the left keys,
    count them per key, then repeat each right element by the count of its key."""
    device = key_left.device
    order = torch.sort(key_left, stable=True).indices
    counts = torch.bincount(key_left, minlength=n_keys)
    start = torch.cumsum(counts, 0) - counts
    per_right = counts[key_right]
    total = int(per_right.sum()) if per_right.numel() else 0
    j = torch.repeat_interleave(torch.arange(key_right.shape[0], device=device), per_right, output_size=total)
    first = torch.cumsum(per_right, 0) - per_right
    local = torch.arange(total, device=device) - first[j]
    i = order[start[key_right[j]] + local]
    return i, j


def triplets(edge_index: Tensor, n_atoms: int) -> TripletIndex:
    r"""All triplets ``k -> v <- u``: ordered pairs of distinct edges with the same target.

    For every output edge ``u -> v`` the triplets list every other edge ``k -> v`` into ``v``
    (:math:`k \ne u`; a graph without repeated edges has no second edge from ``u``). The count is
    :math:`\sum_v d_v (d_v - 1)` for in-degrees :math:`d_v`.

    Args:
        edge_index: ``[2, E]`` int64 (row 0 source, row 1 target), any order, no repeated edges.
        n_atoms: number of atoms (``> max(edge_index)``).

    Returns:
        :class:`TripletIndex`, grouped by ``edge_out`` (ascending), then ``edge_in`` (ascending).

    Shapes:
        ``edge_index [2, E]`` -> ``edge_in [T]``, ``edge_out [T]``.
    """
    n_atoms = _check_n_atoms(n_atoms)
    _check_edge_index("edge_index", edge_index, n_atoms)
    target = edge_index[1]
    e_in, e_out = _match(target, target, n_atoms)
    keep = e_in != e_out
    return TripletIndex(edge_in=e_in[keep], edge_out=e_out[keep])


def quadruplets(edge_index: Tensor, quadruplet_edge_index: Tensor, n_atoms: int) -> QuadrupletIndex:
    r"""All quadruplets ``j -> k -> v <- u`` (paper eq. 10; GemNet-OC's two-graph design).

    ``j -> k`` and ``u -> v`` are edges of the embedding graph ``edge_index``; the middle edge
    ``k -> v`` is an edge of the quadruplet graph ``quadruplet_edge_index`` (its own cutoff and
    neighbour cap). Excluded: :math:`k = u` (the middle edge is the output edge's pair),
    :math:`j = v` (going back along the middle edge) and :math:`j = u` (a triangle
    ``u -> k -> v <- u``). Count: :math:`\sum_{k \to v} (d_k - [v \to k])(d_v - 1 - \ldots)`, i.e.
    the join of the *inner* pairs ``(j -> k, k -> v)`` and the *outer* pairs ``(k -> v, u -> v)`` on
    the middle edge minus the excluded ones.

    Args:
        edge_index: ``[2, E]`` embedding graph (int64, any order, no repeated edges).
        quadruplet_edge_index: ``[2, E_q]`` quadruplet graph (int64); often a subgraph of
            ``edge_index`` but it need not be.
        n_atoms: number of atoms.

    Returns:
        :class:`QuadrupletIndex`, grouped by ``edge_uv`` (ascending).

    Shapes:
        ``[2, E]``, ``[2, E_q]`` -> three ``[Q]`` int64 tensors.
    """
    n_atoms = _check_n_atoms(n_atoms)
    _check_edge_index("edge_index", edge_index, n_atoms)
    _check_edge_index("quadruplet_edge_index", quadruplet_edge_index, n_atoms)
    src, tgt = edge_index[0], edge_index[1]
    q_src, q_tgt = quadruplet_edge_index[0], quadruplet_edge_index[1]
    n_q = quadruplet_edge_index.shape[1]
    # inner pairs (j -> k, k -> v), grouped by the middle edge, j != v
    in_jk, in_kv = _match(tgt, q_src, n_atoms)
    keep = src[in_jk] != q_tgt[in_kv]
    in_jk, in_kv = in_jk[keep], in_kv[keep]
    # outer pairs (k -> v, u -> v), grouped by the output edge, k != u
    out_kv, out_uv = _match(q_tgt, tgt, n_atoms)
    keep = q_src[out_kv] != src[out_uv]
    out_kv, out_uv = out_kv[keep], out_uv[keep]
    # join on the middle edge, grouped by the outer pair (hence by the output edge), j != u
    i_in, i_out = _match(in_kv, out_kv, n_q)
    jk, kv, uv = in_jk[i_in], out_kv[i_out], out_uv[i_out]
    keep = src[jk] != src[uv]
    return QuadrupletIndex(edge_jk=jk[keep], edge_kv=kv[keep], edge_uv=uv[keep])


def neighbor_table(edge_index: Tensor, n_atoms: int, *, by: str = "target") -> NeighborTable:
    """Padded ``[n_atoms, max_degree]`` table of edge ids grouped by target (or source).

    The dense layout used by :class:`~nnip_scaling.nn.DirectionalBlock` for its per-atom batched
    products: row ``v`` lists the edges into ``v`` (``by="target"``) in increasing edge id, padded
    with ``n_edges``.

    Args:
        edge_index: ``[2, E]`` int64.
        n_atoms: number of atoms.
        by: ``"target"`` (group by row 1) or ``"source"`` (row 0).

    Shapes:
        ``[2, E]`` -> ``edge [n_atoms, D]``, ``slot [E]``, ``degree [n_atoms]`` with ``D`` the
        largest degree (0 when there are no edges).
    """
    n_atoms = _check_n_atoms(n_atoms)
    _check_edge_index("edge_index", edge_index, n_atoms)
    if by not in ("target", "source"):
        raise ValueError(f"by must be 'target' or 'source', got {by!r}")
    atom = edge_index[1] if by == "target" else edge_index[0]
    n_edges = atom.shape[0]
    device = atom.device
    degree = torch.bincount(atom, minlength=n_atoms)
    max_degree = int(degree.max()) if n_atoms and n_edges else 0
    order = torch.sort(atom, stable=True).indices
    start = torch.cumsum(degree, 0) - degree
    slot = torch.empty(n_edges, dtype=torch.int64, device=device)
    slot[order] = torch.arange(n_edges, device=device) - start[atom[order]]
    table = torch.full((n_atoms, max_degree), n_edges, dtype=torch.int64, device=device)
    table[atom, slot] = torch.arange(n_edges, device=device)
    return NeighborTable(edge=table, slot=slot, degree=degree)


def select_edges(
    edge_index: Tensor,
    edge_length: Tensor,
    n_atoms: int,
    *,
    cutoff: float | None = None,
    max_neighbors: int | None = None,
    tie_tolerance: float = 1e-4,
) -> Tensor:
    r"""Ids of the edges of a sparser subgraph: a smaller radius and a neighbour cap per target.

    GemNet-OC's quadruplet graph is selected this way from the embedding graph. Kept: edges with
    ``edge_length <= cutoff`` and, with ``max_neighbors = k``, among those into the same target the
    ``k`` shortest **plus every edge within** ``tie_tolerance`` (Å) **of the k-th shortest**. Keeping
    near-ties (unlike a strict cap with an index tie-break) makes the subgraph independent of atom
    order and of rounding in symmetric molecules, so a model using it stays exactly permutation and
    rotation invariant there; the degree may then exceed ``k``.

    Args:
        edge_index: ``[2, E]`` int64.
        edge_length: ``[E]`` floating lengths (Å).
        n_atoms: number of atoms.
        cutoff: radius (Å, > 0) or ``None`` (no radius filter).
        max_neighbors: cap (>= 1) or ``None`` (no cap).
        tie_tolerance: width (Å, >= 0) of the tie window at the cap.

    Returns:
        ``[E_sub]`` int64 edge ids, ascending.

    Shapes:
        ``[2, E]``, ``[E]`` -> ``[E_sub]``.
    """
    n_atoms = _check_n_atoms(n_atoms)
    _check_edge_index("edge_index", edge_index, n_atoms)
    check_float_tensor("edge_length", edge_length)
    if edge_length.shape != (edge_index.shape[1],):
        raise ValueError(f"edge_length must have shape [E] = [{edge_index.shape[1]}], got {list(edge_length.shape)}")
    if cutoff is not None and not (isinstance(cutoff, (int, float)) and not isinstance(cutoff, bool) and cutoff > 0):
        raise ValueError(f"cutoff must be a positive number or None, got {cutoff!r}")
    if max_neighbors is not None:
        max_neighbors = check_int("max_neighbors", max_neighbors, minimum=1)
    if not (isinstance(tie_tolerance, (int, float)) and tie_tolerance >= 0):
        raise ValueError(f"tie_tolerance must be a number >= 0, got {tie_tolerance!r}")
    length = edge_length.detach()
    keep = torch.ones_like(length, dtype=torch.bool) if cutoff is None else length <= cutoff
    ids = torch.nonzero(keep).reshape(-1)
    if max_neighbors is None or ids.numel() == 0:
        return ids
    tgt, ln = edge_index[1, ids], length[ids]
    order = torch.sort(ln, stable=True).indices
    order = order[torch.sort(tgt[order], stable=True).indices]  # by target, then length
    counts = torch.bincount(tgt, minlength=n_atoms)
    start = torch.cumsum(counts, 0) - counts
    last = (start + max_neighbors - 1).clamp(max=ids.numel() - 1)
    kth = torch.where(counts > max_neighbors, ln[order][last], torch.full_like(ln[:1].expand(n_atoms), math.inf))
    return ids[ln <= kth[tgt] + tie_tolerance]


def find_edges(edge_index: Tensor, n_atoms: int, source: Tensor, target: Tensor) -> Tensor:
    """Ids of the edges ``source[i] -> target[i]``, or ``-1`` where there is no such edge.

    A binary search (``searchsorted``) on the sorted keys ``target * n_atoms + source``.

    Args:
        edge_index: ``[2, E]`` int64, no repeated edges.
        n_atoms: number of atoms.
        source, target: int64 tensors of the same shape, values in ``[0, n_atoms)``.

    Shapes:
        ``source [...]``, ``target [...]`` -> ``[...]`` int64.
    """
    n_atoms = _check_n_atoms(n_atoms)
    _check_edge_index("edge_index", edge_index, n_atoms)
    if source.shape != target.shape:
        raise ValueError(f"source and target must have the same shape, got {list(source.shape)} and {list(target.shape)}")
    key = edge_index[1] * n_atoms + edge_index[0]
    sorted_key, order = torch.sort(key)
    query = target * n_atoms + source
    if sorted_key.numel() == 0:
        return torch.full_like(query, -1)
    pos = torch.searchsorted(sorted_key, query.reshape(-1)).reshape(query.shape)
    pos_c = pos.clamp(max=sorted_key.numel() - 1)
    found = sorted_key[pos_c] == query
    return torch.where(found, order[pos_c], torch.full_like(query, -1))


def reverse_edges(edge_index: Tensor, n_atoms: int) -> Tensor:
    """For each edge ``u -> v`` the id of ``v -> u``, or ``-1`` if the graph lacks it
    (a neighbour cap can make a radius graph asymmetric).

    Shapes:
        ``[2, E]`` -> ``[E]`` int64.
    """
    return find_edges(edge_index, n_atoms, edge_index[1], edge_index[0])


# ============================================================================ angles
def _unit(vec: Tensor) -> Tensor:
    """``vec / |vec|`` with a finite value (0) and gradient for the zero vector."""
    n2 = (vec * vec).sum(-1, keepdim=True)
    tiny = torch.finfo(vec.dtype).tiny
    ok = n2 > tiny
    inv = torch.rsqrt(torch.where(ok, n2, torch.ones_like(n2)))
    return vec * torch.where(ok, inv, torch.zeros_like(inv))


def _safe_atan2(y: Tensor, x: Tensor) -> Tensor:
    """``atan2(y, x)`` with value 0 and zero gradient at ``x = y = 0`` (torch's gradient is NaN there)."""
    tiny = torch.finfo(x.dtype).tiny
    ok = x * x + y * y > tiny
    return torch.where(ok, torch.atan2(torch.where(ok, y, torch.zeros_like(y)), torch.where(ok, x, torch.ones_like(x))), torch.zeros_like(x))


def _check_vectors(**vecs: Tensor) -> None:
    shape = None
    for name, v in vecs.items():
        check_float_tensor(name, v)
        check_last_dims(name, v, (3,))
        if shape is None:
            shape = v.shape
        elif v.shape != shape:
            names = ", ".join(vecs)
            raise ValueError(f"{names} must have the same shape [..., 3], got {[list(w.shape) for w in vecs.values()]}")


def bond_angle_cos(vec_a: Tensor, vec_b: Tensor) -> Tensor:
    r"""Cosine of the angle between two vectors from a common apex, clamped to :math:`[-1, 1]`.

    .. math:: \cos\varphi = \hat a\cdot\hat b

    For a triplet ``k -> v <- u`` pass ``vec_a = edge_vec[u -> v]`` (:math:`x_u - x_v`) and
    ``vec_b = edge_vec[k -> v]``. A polynomial in the unit vectors: smooth for nonzero vectors, with
    finite gradients at :math:`\varphi = 0, \pi` (no ``arccos``).

    Shapes:
        ``[..., 3]``, ``[..., 3]`` -> ``[...]``.
    """
    _check_vectors(vec_a=vec_a, vec_b=vec_b)
    return (_unit(vec_a) * _unit(vec_b)).sum(-1).clamp(-1.0, 1.0)


def bond_angle(vec_a: Tensor, vec_b: Tensor) -> Tensor:
    r"""Angle :math:`\varphi \in [0, \pi]` between two vectors from a common apex.

    .. math:: \varphi = \operatorname{atan2}\big(\lVert\hat a\times\hat b\rVert,\ \hat a\cdot\hat b\big)

    ``atan2`` is accurate near 0 and :math:`\pi` (where ``arccos`` loses digits); the gradient is
    finite everywhere: at exactly collinear vectors (:math:`\varphi = 0` or :math:`\pi`, where
    :math:`\varphi` has a kink) the norm's gradient is taken as 0.

    Shapes:
        ``[..., 3]``, ``[..., 3]`` -> ``[...]``.
    """
    _check_vectors(vec_a=vec_a, vec_b=vec_b)
    a, b = _unit(vec_a), _unit(vec_b)
    cross = torch.linalg.cross(a, b, dim=-1)
    n2 = (cross * cross).sum(-1)
    tiny = torch.finfo(n2.dtype).tiny
    ok = n2 > tiny
    sin = torch.where(ok, torch.sqrt(torch.where(ok, n2, torch.ones_like(n2))), torch.zeros_like(n2))
    return _safe_atan2(sin, (a * b).sum(-1))


def _dihedral_parts(vec_uv: Tensor, vec_kv: Tensor, vec_jk: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``cos φ1 = â·b̂``, ``cos φ2' = b̂·d̂``, ``c = n1·n2``, ``det[â, b̂, d̂]`` for unit vectors
    ``â = r̂_uv``, ``b̂ = r̂_kv``, ``d̂ = r̂_jk`` (``n1 = b̂ × â``, ``n2 = b̂ × d̂``)."""
    a, b, d = _unit(vec_uv), _unit(vec_kv), _unit(vec_jk)
    ab = (a * b).sum(-1)
    bd = (b * d).sum(-1)
    c = (a * d).sum(-1) - ab * bd  # (b x a).(b x d) = a.d - (a.b)(b.d) for unit b
    det = (torch.linalg.cross(a, b, dim=-1) * d).sum(-1)
    return ab, bd, c, det


def dihedral_angle(vec_uv: Tensor, vec_kv: Tensor, vec_jk: Tensor) -> Tensor:
    r"""Parity-free dihedral :math:`\omega_{uvkj} \in [0, \pi]` of a quadruplet ``j -> k -> v <- u``.

    The angle between the plane :math:`(u, v, k)`, normal :math:`n_1 = \hat b \times \hat a`, and the
    plane :math:`(v, k, j)`, normal :math:`n_2 = \hat b \times \hat d`, where
    :math:`\hat a = \hat r_{uv}` (``vec_uv = x_u - x_v``), :math:`\hat b = \hat r_{kv}`
    (``vec_kv = x_k - x_v``), :math:`\hat d = \hat r_{jk}` (``vec_jk = x_j - x_k``):

    .. math::

        \omega = \operatorname{atan2}\big(\lvert n_1 \times n_2\rvert,\ n_1\cdot n_2\big)
               = \operatorname{atan2}\big(\lvert\det[\hat a, \hat b, \hat d]\rvert,\
                 \hat a\cdot\hat d - (\hat a\cdot\hat b)(\hat b\cdot\hat d)\big),

    using :math:`n_1 \times n_2 = \hat b\,\det[\hat b, \hat a, \hat d]`. *cis* (``u`` and ``j`` on the
    same side) is 0, *trans* is :math:`\pi`. A reflection flips the sign of the determinant only, so
    :math:`\omega` is invariant under O(3) (the parity-free convention of GemNet-OC). Undefined when
    either triple is collinear (:math:`n_1 = 0` or :math:`n_2 = 0`): then 0 is returned, with a zero
    gradient; the gradient is finite everywhere.

    Shapes:
        three ``[..., 3]`` -> ``[...]``.
    """
    _check_vectors(vec_uv=vec_uv, vec_kv=vec_kv, vec_jk=vec_jk)
    _, _, c, det = _dihedral_parts(vec_uv, vec_kv, vec_jk)
    return _safe_atan2(det.abs(), c)


# ============================================================================ bases
def circular_basis(cos_phi: Tensor, *, n: int) -> Tensor:
    r"""Circular basis of a bond angle: component-normalised Legendre polynomials.

    .. math:: c_l(\varphi) = \sqrt{2l+1}\;P_l(\cos\varphi) = \sqrt{4\pi}\,Y_l^0(\varphi),\qquad l = 0..n-1,

    (GemNet-OC's ``spherical_harmonics`` circular basis, times :math:`\sqrt{4\pi}`). Mean square 1
    over isotropic directions (:math:`\cos\varphi` uniform on :math:`[-1, 1]`). Polynomials in
    :math:`\cos\varphi`: smooth, finite gradients everywhere. Bonnet's recursion
    :math:`(l+1)P_{l+1} = (2l+1)xP_l - lP_{l-1}`.

    Args:
        cos_phi: :math:`\cos\varphi` (e.g. from :func:`bond_angle_cos`).
        n: number of functions (>= 1).

    Shapes:
        ``[...]`` -> ``[..., n]``.
    """
    check_float_tensor("cos_phi", cos_phi)
    n = check_int("n", n, minimum=1)
    x = cos_phi
    p = [torch.ones_like(x)]
    if n > 1:
        p.append(x)
    for l in range(1, n - 1):
        p.append(((2 * l + 1) * x * p[l] - l * p[l - 1]) / (l + 1))
    return torch.stack([math.sqrt(2 * l + 1) * p[l] for l in range(n)], dim=-1)


def spherical_basis_size(n: int) -> int:
    """Number of functions of :func:`spherical_basis` with degrees ``l < n``: ``n (n + 1) / 2``."""
    n = check_int("n", n, minimum=1)
    return n * (n + 1) // 2


@functools.cache
def _lm_table(n: int) -> tuple[tuple[int, int, float], ...]:
    """``(l, m, K_lm)`` for ``l < n``, ``0 <= m <= l``, in basis order, with the component
    normalisation :math:`K_{lm} = \\sqrt{(2l+1)(l-m)!/(l+m)!}\\,\\sqrt{2 - \\delta_{m0}}`."""
    out = []
    for l in range(n):
        for m in range(l + 1):
            k = math.sqrt((2 * l + 1) * math.factorial(l - m) / math.factorial(l + m))
            out.append((l, m, k * (math.sqrt(2.0) if m else 1.0)))
    return tuple(out)


def legendre_derivative_table(x: Tensor, n: int) -> Tensor:
    r"""Normalised :math:`K_{lm}\,\frac{d^m P_l}{dx^m}(x)` for ``l < n``, ``0 <= m <= l``.

    With :math:`\sin^m\varphi` this is the associated Legendre function:
    :math:`P_l^m(\cos\varphi) = \sin^m\varphi\,\frac{d^m P_l}{dx^m}(\cos\varphi)` (no Condon-Shortley
    phase). Recursions (in ``m`` then ``l``): :math:`Q_{mm} = (2m-1)!!`,
    :math:`Q_{m+1,m} = (2m+1)xQ_{mm}`, :math:`(l-m)Q_{lm} = (2l-1)xQ_{l-1,m} - (l+m-1)Q_{l-2,m}`.
    Used by :func:`spherical_basis` and the factorised quadruplet aggregation of
    :class:`~nnip_scaling.nn.DirectionalBlock`.

    Shapes:
        ``[...]`` -> ``[..., n (n+1) / 2]`` in the order of :func:`spherical_basis`.
    """
    q: dict[tuple[int, int], Tensor] = {}
    one = torch.ones_like(x)
    for m in range(n):
        dfact = 1.0
        for i in range(1, 2 * m, 2):
            dfact *= i
        q[m, m] = one * dfact
        if m + 1 < n:
            q[m + 1, m] = (2 * m + 1) * x * q[m, m]
        for l in range(m + 2, n):
            q[l, m] = ((2 * l - 1) * x * q[l - 1, m] - (l + m - 1) * q[l - 2, m]) / (l - m)
    return torch.stack([k * q[l, m] for l, m, k in _lm_table(n)], dim=-1)


def spherical_basis(vec_uv: Tensor, vec_kv: Tensor, vec_jk: Tensor, *, n: int) -> Tensor:
    r"""Spherical basis of a quadruplet's (bond angle, dihedral) pair, parity-free and smooth.

    For ``j -> k -> v <- u`` with :math:`\varphi_1 = \varphi_{uvk}` (at ``v``), :math:`\omega` the
    dihedral (:func:`dihedral_angle`) and :math:`\varphi_2 = \varphi_{vkj}` (at ``k``):

    .. math::

        s_{lm} = \sqrt{4\pi}\;Y_{lm}^{\cos}(\varphi_1, \omega)\;\sin^m\varphi_2
               = K_{lm}\,P_l^m(\cos\varphi_1)\cos(m\omega)\,\sin^m\varphi_2,
        \qquad l = 0..n-1,\ m = 0..l,

    the real spherical harmonics of GemNet's spherical basis restricted to the :math:`\cos(m\omega)`
    (even, parity-free) part, with :math:`K_{lm}` the component normalisation (mean square 1 over the
    sphere when :math:`\sin\varphi_2 = 1`). The factor :math:`\sin^m\varphi_2` removes the
    discontinuity of :math:`\omega` where ``v, k, j`` are collinear: with :math:`\hat a, \hat b,
    \hat d` as in :func:`dihedral_angle`, :math:`c = n_1\cdot n_2 = \sin\varphi_1\sin\varphi_2\cos\omega`
    and :math:`S^2 = \sin^2\varphi_1\sin^2\varphi_2`,

    .. math:: \sin^m\varphi_1\,\sin^m\varphi_2\,\cos(m\omega) = A_m,\quad A_0 = 1,\ A_1 = c,\
              A_{m+1} = 2cA_m - S^2 A_{m-1}

    (Chebyshev's recursion), so :math:`s_{lm} = K_{lm}\,\frac{d^mP_l}{dx^m}(\cos\varphi_1)\,A_m` is a
    polynomial in :math:`\hat a, \hat b, \hat d`: smooth, with finite gradients for every geometry,
    collinear ones included. O(3)-invariant.

    Args:
        vec_uv: ``x_u - x_v`` (the output edge's ``edge_vec``).
        vec_kv: ``x_k - x_v`` (the middle edge's ``edge_vec``).
        vec_jk: ``x_j - x_k`` (the inner edge's ``edge_vec``).
        n: number of degrees :math:`l` (>= 1); returns :func:`spherical_basis_size` ``(n)`` functions.

    Shapes:
        three ``[..., 3]`` -> ``[..., n (n+1) / 2]``, ordered ``(l, m)`` = (0,0), (1,0), (1,1), (2,0), ...
    """
    _check_vectors(vec_uv=vec_uv, vec_kv=vec_kv, vec_jk=vec_jk)
    n = check_int("n", n, minimum=1)
    ab, bd, c, _ = _dihedral_parts(vec_uv, vec_kv, vec_jk)
    s2 = (1.0 - ab * ab).clamp(min=0.0) * (1.0 - bd * bd).clamp(min=0.0)
    a_m = [torch.ones_like(c)]
    if n > 1:
        a_m.append(c)
    for m in range(1, n - 1):
        a_m.append(2.0 * c * a_m[m] - s2 * a_m[m - 1])
    q = legendre_derivative_table(ab.clamp(-1.0, 1.0), n)
    ms = [m for _, m, _ in _lm_table(n)]
    return q * torch.stack([a_m[m] for m in ms], dim=-1)
