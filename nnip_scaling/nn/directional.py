r"""Directional message passing: the GemNet-OC-style block (paper section 2.1 item 2, appendix C.2).

Messages live on edges :math:`m_{uv}` (edge ``u -> v``) next to atom embeddings :math:`h_v`; a block
updates both from E(3)-invariant geometry only -- distances, bond angles :math:`\varphi_{uvk}` of
triplets ``k -> v <- u`` and dihedrals :math:`\omega_{uvkj}` of quadruplets ``j -> k -> v <- u`` (eq. 10,
GemNet-OC, Gasteiger et al. 2022). Equations, the normalisation we chose instead of GemNet-OC's
fitted scale factors, and the parameter count: docs/models/directional.md.

Pieces:

* :func:`build_directional_index` -- integer bookkeeping of a graph (neighbour tables, the quadruplet
  subgraph, reverse edges); no parameters, built once per forward (or by the caller).
* :class:`DirectionalBasis` -- distances and angles -> normalised radial / circular / spherical bases
  and their (block-shared) embeddings, as a :class:`DirectionalFeatures`.
* :class:`DirectionalBlock` -- one interaction block: triplet and quadruplet interactions through
  bilinear layers, atom update, residual MLPs.
* :class:`DirectionalOutput` -- per-block readout of atom and edge features; :class:`EdgeForceHead` --
  direct forces :math:`F_v = \sum_u f_{uv}\,\hat r_{uv}` (equivariant).

**Layout.** Sums over triplets and quadruplets are batched matrix products in a padded per-atom layout
(``[n_atoms, max_degree, ...]``, :func:`~nnip_scaling.geometry.angles.neighbor_table`) instead of
scatters over explicit triplet lists: the input messages of atom ``v`` are gathered once and shared by
all its output edges. The quadruplet sum is *factorised* through the middle edge: with
:math:`\alpha = (\hat r_{uv}\cdot e_1) + i(\hat r_{uv}\cdot e_2)` and
:math:`\delta = (\hat r_{jk}\cdot e_1) + i(\hat r_{jk}\cdot e_2)` in any orthonormal frame
:math:`(e_1, e_2)` perpendicular to :math:`\hat r_{kv}`,
:math:`\sin^m\varphi_1\sin^m\varphi_2\cos(m\omega) = \mathrm{Re}(\alpha^m)\mathrm{Re}(\delta^m) +
\mathrm{Im}(\alpha^m)\mathrm{Im}(\delta^m)`, so the sum over ``j`` is done once per middle edge and
the sum over ``k`` once per output edge: cost :math:`O(\#\text{triplets})`, never
:math:`O(\#\text{quadruplets})`. The excluded ``j = u`` terms are subtracted explicitly. The result
equals the direct sum over :func:`~nnip_scaling.geometry.angles.quadruplets` with
:func:`~nnip_scaling.geometry.angles.spherical_basis` (tested); the frame is arbitrary (an axis
choice per middle edge) and cancels exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from nnip_scaling.geometry.angles import (
    NeighborTable,
    _lm_table,
    circular_basis,
    find_edges,
    legendre_derivative_table,
    neighbor_table,
    reverse_edges,
    select_edges,
    spherical_basis_size,
)
from nnip_scaling.geometry.radial import gaussian_basis, polynomial_envelope
from nnip_scaling.nn.mlp import init_hidden_, init_readout_
from nnip_scaling.ops import scatter_sum

__all__ = [
    "Dense",
    "DirectionalBasis",
    "DirectionalBlock",
    "DirectionalEnergyHead",
    "DirectionalFeatures",
    "DirectionalIndex",
    "DirectionalOutput",
    "EdgeForceHead",
    "QuadrupletFeatures",
    "QuadrupletLayout",
    "ResidualLayer",
    "build_directional_index",
    "quadruplet_aggregate",
    "radial_normalisation",
    "rms_normalise",
    "soft_normalise",
    "triplet_aggregate",
]

_SILU_SCALE = 1.0 / 0.6  # GemNet's ScaledSiLU: keeps the second moment of N(0, 1) inputs near 1


# ============================================================================ small layers
class Dense(nn.Module):
    r"""Bias-free linear layer, optionally followed by the scaled SiLU :math:`\mathrm{silu}(x)/0.6`.

    μP hidden initialisation :math:`W \sim \mathcal N(0, 1/\text{fan\_in})`
    (:func:`nnip_scaling.nn.mlp.init_hidden_`), or the readout one with ``readout=True``.

    Shapes:
        ``[..., in_features] -> [..., out_features]``.
    """

    def __init__(self, in_features: int, out_features: int, *, activation: bool, readout: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        (init_readout_ if readout else init_hidden_)(self.linear)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        x = self.linear(x)
        return nn.functional.silu(x) * _SILU_SCALE if self.activation else x


def soft_normalise(x: Tensor) -> Tensor:
    r"""Soft RMS normalisation :math:`x / \sqrt{1 + \langle x^2\rangle}` over the last dimension.

    Never amplifies (gain :math:`\le 1`): small inputs pass almost unchanged (an edge fading out at the
    cutoff stays small), large ones are brought to RMS :math:`\le 1`. Smooth, parameter-free.

    Shapes:
        ``[..., C] -> [..., C]``.
    """
    return x * torch.rsqrt(1.0 + (x * x).mean(-1, keepdim=True))


def rms_normalise(x: Tensor, eps: float = 1e-6) -> Tensor:
    r"""RMS normalisation :math:`x / \sqrt{\langle x^2\rangle + \epsilon}` over the last dimension
    (no learned gain). Used on the atom and edge states at the end of each block.

    Shapes:
        ``[..., C] -> [..., C]``.
    """
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps)


class ResidualLayer(nn.Module):
    r""":math:`x \mapsto \big(x + \mathrm{Dense}(\mathrm{Dense}(\mathrm{soft}(x)))\big)/\sqrt 2`, two
    activated dense layers on the :func:`soft_normalise`-d input (pre-normalised residual branch;
    keeps stacks of residual layers from amplifying, the job of GemNet-OC's fitted scale factors).

    Shapes:
        ``[..., width] -> [..., width]``.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.dense1 = Dense(width, width, activation=True)
        self.dense2 = Dense(width, width, activation=True)

    def forward(self, x: Tensor) -> Tensor:
        return (x + self.dense2(self.dense1(soft_normalise(x)))) * (1.0 / math.sqrt(2.0))


def _residuals(width: int, n: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualLayer(width) for _ in range(n)))


def _check_dim(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


# ============================================================================ index (integers only)
@dataclass(frozen=True, eq=False)
class QuadrupletLayout:
    """Integer layout of the quadruplets ``j -> k -> v <- u`` (see :func:`build_directional_index`).

    Attributes:
        edge: ``[E_q]`` ids (into the embedding graph) of the quadruplet-graph edges ``k -> v``.
        table: ``[n_atoms, D_q]`` quadruplet edges into each atom (ids into ``edge``), pad ``E_q``.
        inner_edge: ``[E_q, D]`` embedding edges ``j -> k`` into the source ``k`` of each quadruplet
            edge (pad ``E``).
        inner_mask: ``[E_q, D]`` bool, valid slot and ``j != v``.
        outer_mask: ``[n_atoms, D, D_q]`` bool, output edge ``u -> v`` (slot ``a``) and quadruplet edge
            ``k -> v`` (slot ``b``) both present and ``k != u``.
        correction: ``[n_atoms, D, D_q]`` flat index ``q * D + s`` of the inner pair ``(u -> k, k -> v)``
            whose ``j = u`` term must be removed, or ``E_q * D`` (a zero row) where ``u -> k`` is not an
            edge.
    """

    edge: Tensor
    table: Tensor
    inner_edge: Tensor
    inner_mask: Tensor
    outer_mask: Tensor
    correction: Tensor

    @property
    def n_edges(self) -> int:
        return int(self.edge.shape[0])


@dataclass(frozen=True, eq=False)
class DirectionalIndex:
    """Integer bookkeeping of one graph for :class:`DirectionalBlock` (no floats but the edge selection).

    Attributes:
        n_atoms: number of atoms.
        edge_index: ``[2, E]`` embedding graph (row 0 source ``u``, row 1 target ``v``).
        table: :class:`~nnip_scaling.geometry.angles.NeighborTable` of the edges by target
            (``table.edge [n_atoms, D]``).
        flat_slot: ``[E]`` position ``v * D + slot`` of each edge in the flattened table.
        reverse: ``[E]`` id of the reverse edge ``v -> u`` or ``-1``.
        triplet_mask: ``[n_atoms, D, D]`` bool, slots ``a != b`` both holding edges (triplets
            ``k -> v <- u`` in the dense layout).
        quadruplets: :class:`QuadrupletLayout` or ``None`` when quadruplets are off.
    """

    n_atoms: int
    edge_index: Tensor
    table: NeighborTable
    flat_slot: Tensor
    reverse: Tensor
    triplet_mask: Tensor
    quadruplets: QuadrupletLayout | None

    @property
    def n_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def max_degree(self) -> int:
        return self.table.max_degree


def build_directional_index(
    edge_index: Tensor,
    edge_length: Tensor,
    n_atoms: int,
    *,
    quadruplets: bool = True,
    quadruplet_cutoff: float | None = None,
    quadruplet_max_neighbors: int | None = None,
) -> DirectionalIndex:
    r"""Neighbour tables, reverse edges and the quadruplet subgraph of an embedding graph.

    The quadruplet graph (GemNet-OC's ``qint`` graph: its own cutoff and neighbour cap) is selected from
    the embedding edges by :func:`~nnip_scaling.geometry.angles.select_edges`: edges with
    :math:`r \le` ``quadruplet_cutoff``, at most ``quadruplet_max_neighbors`` per target (nearest first,
    exact ties with the last one kept). Nothing here is differentiable; the geometry is recomputed from
    ``edge_vec`` in :class:`DirectionalBasis`.

    Args:
        edge_index: ``[2, E]`` int64 embedding graph, no repeated edges (any order).
        edge_length: ``[E]`` edge lengths (only used to select the quadruplet graph).
        n_atoms: number of atoms.
        quadruplets: build the quadruplet layout.
        quadruplet_cutoff: radius of the quadruplet graph (Å); ``None`` keeps every edge.
        quadruplet_max_neighbors: cap of the quadruplet graph; ``None``: no cap.

    Shapes:
        ``[2, E]``, ``[E]`` -> :class:`DirectionalIndex` (``D`` = largest in-degree, ``D_q`` that of
        the quadruplet graph).
    """
    table = neighbor_table(edge_index, n_atoms, by="target")
    src, tgt = edge_index[0], edge_index[1]
    n_edges = edge_index.shape[1]
    d = table.max_degree
    device = edge_index.device
    flat_slot = tgt * d + table.slot
    valid = table.mask
    triplet_mask = valid[:, :, None] & valid[:, None, :] & ~torch.eye(d, dtype=torch.bool, device=device)
    quad: QuadrupletLayout | None = None
    if quadruplets:
        q_edge = select_edges(
            edge_index, edge_length, n_atoms, cutoff=quadruplet_cutoff, max_neighbors=quadruplet_max_neighbors
        )
        n_q = q_edge.shape[0]
        q_table = neighbor_table(edge_index[:, q_edge], n_atoms, by="target")
        q_src, q_tgt = src[q_edge], tgt[q_edge]
        src_pad = torch.cat([src, src.new_full((1,), -1)])
        inner_edge = table.edge[q_src]  # [E_q, D] edges j -> k into k = source of the middle edge
        inner_mask = (inner_edge < n_edges) & (src_pad[inner_edge] != q_tgt[:, None])
        # outer pairs (u -> v in slot a, k -> v in slot b), k != u
        q_src_pad = torch.cat([q_src, q_src.new_full((1,), -2)])
        u = src_pad[table.edge]  # [n, D], -1 on padding
        k = q_src_pad[q_table.edge]  # [n, D_q], -2 on padding
        outer_mask = valid[:, :, None] & q_table.mask[:, None, :] & (u[:, :, None] != k[:, None, :])
        # j = u terms: the inner pair (u -> k, k -> v), present when u -> k is an embedding edge
        uu = u[:, :, None].expand_as(outer_mask).clamp(min=0)
        kk = k[:, None, :].expand_as(outer_mask).clamp(min=0)
        e_uk = find_edges(edge_index, n_atoms, uu, kk)
        has = outer_mask & (e_uk >= 0)
        q_ids = q_table.edge[:, None, :].expand_as(outer_mask)
        slot_pad = torch.cat([table.slot, table.slot.new_zeros(1)])
        corr = q_ids * d + slot_pad[e_uk.clamp(min=0)]
        correction = torch.where(has, corr, torch.full_like(corr, n_q * d))
        quad = QuadrupletLayout(
            edge=q_edge,
            table=q_table.edge,
            inner_edge=inner_edge,
            inner_mask=inner_mask,
            outer_mask=outer_mask,
            correction=correction,
        )
    return DirectionalIndex(
        n_atoms=n_atoms,
        edge_index=edge_index,
        table=table,
        flat_slot=flat_slot,
        reverse=reverse_edges(edge_index, n_atoms),
        triplet_mask=triplet_mask,
        quadruplets=quad,
    )


# ============================================================================ features (geometry)
@dataclass(frozen=True, eq=False)
class QuadrupletFeatures:
    """Block-shared geometric factors of the quadruplet interaction (see :class:`DirectionalBasis`).

    Attributes:
        inner_basis: ``[E_q, D, basis_dim]`` embedded circular basis of the inner triplets
            ``j -> k -> v`` (radial part on :math:`r_{kv}`, angle :math:`\\varphi_{vkj}` at ``k``).
        delta: ``[E_q, 2L, D]`` :math:`(\\mathrm{Re}, \\mathrm{Im})(\\delta^m)`, ``m < L``, of each inner
            edge in the frame of its middle edge (zero on excluded slots).
        gamma: ``[n_atoms * n_lm, D, 2 D_q]`` :math:`K_{lm}\\,d^mP_l(\\cos\\varphi_1)\\,
            (\\mathrm{Re}, \\mathrm{Im})(\\alpha^m)` for output slot ``a`` and middle slot ``b``.
        correction: ``[n_atoms * D, n_lm, D_q]`` spherical basis of the excluded ``j = u`` quadruplets
            (zero where there is none).
        radial: ``[E, sbf_dim, n_lm]`` embedded radial part :math:`r_{uv}` of the spherical basis.
        norm: ``[E]`` :math:`1/\\sqrt{1 + c_v}` of the output edge's target (quadruplet soft count).
    """

    inner_basis: Tensor
    delta: Tensor
    gamma: Tensor
    correction: Tensor
    radial: Tensor
    norm: Tensor


@dataclass(frozen=True, eq=False)
class DirectionalFeatures:
    """Everything a :class:`DirectionalBlock` needs about the geometry, shared by all blocks.

    Attributes:
        index: the integer layout.
        unit: ``[E, 3]`` :math:`\\hat r_{uv}`.
        rbf: ``[E, num_radial]`` normalised radial basis with envelope.
        rbf_triplet: ``[E, basis_dim]`` embedded radial basis for the input edges of interactions.
        rbf_atom: ``[E, basis_dim]`` embedded radial basis of the atom update.
        rbf_output: ``[E, basis_dim]`` embedded radial basis of the output blocks.
        triplet_radial: ``[E, basis_dim, num_spherical]`` radial part (on :math:`r_{uv}`) of the
            embedded circular basis (GemNet's ``rad_W1``).
        triplet_angular: ``[n_atoms, D * num_spherical, D]`` circular basis
            :math:`c_l(\\varphi_{uvk})` for output slot ``a`` (rows ``a * L + l``) and input slot ``b``.
        atom_norm: ``[n_atoms]`` :math:`1/\\sqrt{1 + n_v}`, :math:`n_v = \\sum_u u_{env}(r_{uv})`.
        quadruplets: :class:`QuadrupletFeatures` or ``None``.
    """

    index: DirectionalIndex
    unit: Tensor
    rbf: Tensor
    rbf_triplet: Tensor
    rbf_atom: Tensor
    rbf_output: Tensor
    triplet_radial: Tensor
    triplet_angular: Tensor
    atom_norm: Tensor
    quadruplets: QuadrupletFeatures | None


def radial_normalisation(n: int, cutoff: float, *, p: int = 5, n_grid: int = 4096) -> float:
    r"""Constant :math:`\kappa` with :math:`\overline{\sum_k (\kappa\, g_k(r)\, u(r))^2} = n` over
    :math:`r` uniform in :math:`[0, c]` (midpoint rule, float64): the radial basis gets mean square 1
    per function, so its embeddings start at unit variance. A fixed number of the basis, not fitted to
    data (GemNet-OC's scale factors were)."""
    r = (torch.arange(n_grid, dtype=torch.float64, device="cpu") + 0.5) * (cutoff / n_grid)  # also under a meta default device
    g = gaussian_basis(r, n=n, cutoff=cutoff) * polynomial_envelope(r, cutoff=cutoff, p=p)[:, None]
    return math.sqrt(n / float((g * g).sum(-1).mean()))


def _complex_powers(re: Tensor, im: Tensor, n: int) -> Tensor:
    """``(Re, Im)`` of ``(re + i im)^m`` for ``m < n``, interleaved: ``[..., 2n]`` (Re0=1, Im0=0, Re1, ...)."""
    out = [torch.ones_like(re), torch.zeros_like(re)]
    pr, pi = torch.ones_like(re), torch.zeros_like(re)
    for _ in range(1, n):
        pr, pi = pr * re - pi * im, pr * im + pi * re
        out += [pr, pi]
    return torch.stack(out, dim=-1)


def _frames(b: Tensor) -> tuple[Tensor, Tensor]:
    """Orthonormal ``e1, e2`` perpendicular to unit vectors ``b`` ``[..., 3]``: ``e1`` from the coordinate
    axis least aligned with ``b``; ``e2 = b x e1``. Piecewise smooth; results built from it are
    frame-independent."""
    axis = torch.nn.functional.one_hot(b.detach().abs().argmin(-1), 3).to(b.dtype)
    e1 = axis - (axis * b).sum(-1, keepdim=True) * b
    e1 = e1 * torch.rsqrt((e1 * e1).sum(-1, keepdim=True))
    e2 = torch.linalg.cross(b, e1, dim=-1)
    return e1, e2


def _pad_rows(x: Tensor) -> Tensor:
    """Append one zero row (the padding slot of neighbour tables)."""
    return torch.cat([x, x.new_zeros((1, *x.shape[1:]))])


def _take(x: Tensor, index: Tensor) -> Tensor:
    """``x[index]`` for an integer tensor ``index`` of any shape, via ``index_select`` (several times
    faster than advanced indexing on CPU). Shapes: ``[N, *F]``, ``[*I]`` -> ``[*I, *F]``."""
    return x.index_select(0, index.reshape(-1)).view(*index.shape, *x.shape[1:])


def _take_padded(x: Tensor, index: Tensor) -> Tensor:
    """``_pad_rows(x)[index]``: rows of ``x``, index ``len(x)`` giving zeros."""
    return _take(_pad_rows(x), index)


def _channels(n: int, device: torch.device) -> Tensor:
    """``[n_lm, 2]`` channel of ``(Re, Im)(x^m)`` in :func:`_complex_powers`' layout for each ``(l, m)``."""
    ms = torch.tensor([m for _, m, _ in _lm_table(n)], dtype=torch.int64, device=device)
    return torch.stack([2 * ms, 2 * ms + 1], dim=-1)


class DirectionalBasis(nn.Module):
    r"""Radial, circular and spherical bases of a graph and their block-shared embeddings.

    Bases (all component normalised, docs/models/directional.md):

    * radial :math:`e(r) = \kappa\, g(r)\, u(r)`: ``num_radial`` Gaussians on :math:`[0, c]`
      (:func:`~nnip_scaling.geometry.gaussian_basis`) times the polynomial envelope
      (:func:`~nnip_scaling.geometry.polynomial_envelope`, p = 5), :math:`\kappa` from
      :func:`radial_normalisation`;
    * circular :math:`c_l(\varphi)`, :func:`~nnip_scaling.geometry.angles.circular_basis`, ``l < num_spherical``;
    * spherical :math:`s_{lm}(\varphi_1, \omega; \varphi_2)`,
      :func:`~nnip_scaling.geometry.angles.spherical_basis`, ``l < quadruplet_spherical``, in factorised form.

    Shared embeddings (GemNet-OC's ``mlp_rbf_tint``, ``mlp_cbf_tint``, ``mlp_rbf_h``, ``mlp_rbf_out``):
    three projections ``num_radial -> basis_dim`` and the circular-basis embedding
    :math:`W \in \mathbb R^{\text{num\_radial}\times \text{num\_spherical}\times\text{basis\_dim}}`
    (also used, with the quadruplet envelope, for the inner triplets of quadruplets); with quadruplets,
    a projection ``num_radial -> basis_dim`` and a ``basis_dim x n_lm x sbf_dim`` tensor for the spherical
    basis (a low-rank version of GemNet-OC's ``mlp_sbf_qint``).

    Args:
        cutoff: embedding-graph radius (Å).
        num_radial: radial functions; num_spherical: circular degrees; basis_dim: embedding size.
        quadruplets: build quadruplet features.
        quadruplet_cutoff: radius of the quadruplet graph (envelope of the middle edge), <= cutoff.
        quadruplet_spherical: degrees ``L`` of the spherical basis; sbf_dim: its embedding size.

    Forward:
        ``(edge_vec [E, 3], index: DirectionalIndex) -> DirectionalFeatures``.
    """

    def __init__(
        self,
        cutoff: float,
        *,
        num_radial: int = 128,
        num_spherical: int = 7,
        basis_dim: int = 16,
        quadruplets: bool = True,
        quadruplet_cutoff: float | None = None,
        quadruplet_spherical: int = 4,
        sbf_dim: int = 8,
    ) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.quadruplet_cutoff = self.cutoff if quadruplet_cutoff is None else float(quadruplet_cutoff)
        if not 0 < self.quadruplet_cutoff <= self.cutoff:
            raise ValueError(f"quadruplet_cutoff must lie in (0, cutoff={cutoff}], got {quadruplet_cutoff!r}")
        self.num_radial = _check_dim("num_radial", num_radial)
        self.num_spherical = _check_dim("num_spherical", num_spherical)
        self.basis_dim = _check_dim("basis_dim", basis_dim)
        self.quadruplets = bool(quadruplets)
        self.quadruplet_spherical = _check_dim("quadruplet_spherical", quadruplet_spherical)
        self.sbf_dim = _check_dim("sbf_dim", sbf_dim)
        self.radial_scale = radial_normalisation(num_radial, self.cutoff)
        self.rbf_triplet = Dense(num_radial, basis_dim, activation=False)
        self.rbf_atom = Dense(num_radial, basis_dim, activation=False)
        self.rbf_output = Dense(num_radial, basis_dim, activation=False)
        self.cbf_weight = nn.Parameter(torch.randn(num_radial, basis_dim * num_spherical) / math.sqrt(num_radial * num_spherical))
        if self.quadruplets:
            n_lm = spherical_basis_size(quadruplet_spherical)
            self.n_lm = n_lm
            self.rbf_spherical = Dense(num_radial, basis_dim, activation=False)
            self.sbf_weight = nn.Parameter(torch.randn(basis_dim, sbf_dim * n_lm) / math.sqrt(basis_dim * n_lm))

    def radial(self, r: Tensor, *, cutoff: float | None = None) -> Tensor:
        """``[E] -> [E, num_radial]``: :math:`\\kappa g(r) u(r)` (envelope at ``cutoff``, default the
        graph's)."""
        env = polynomial_envelope(r, cutoff=self.cutoff if cutoff is None else cutoff)
        return gaussian_basis(r, n=self.num_radial, cutoff=self.cutoff) * (env * self.radial_scale)[:, None]

    def forward(self, edge_vec: Tensor, index: DirectionalIndex) -> DirectionalFeatures:
        n, d, n_edges = index.n_atoms, index.max_degree, index.n_edges
        tgt = index.edge_index[1]
        r = torch.sqrt((edge_vec * edge_vec).sum(-1))
        unit = edge_vec / r[:, None]
        env = polynomial_envelope(r, cutoff=self.cutoff)
        rbf = self.radial(r)
        n_soft = scatter_sum(env, tgt, n)
        atom_norm = torch.rsqrt(1.0 + n_soft)
        ls = self.num_spherical
        triplet_radial = (rbf @ self.cbf_weight).reshape(n_edges, self.basis_dim, ls)
        # circular basis of every (output slot a, input slot b) pair of every atom
        u_pad = _take_padded(unit, index.table.edge)  # [n, D, 3]
        cos = torch.bmm(u_pad, u_pad.transpose(1, 2)).clamp(-1.0, 1.0)  # [n, D, D]
        cb = circular_basis(cos, n=ls) * index.triplet_mask[..., None].to(cos.dtype)  # [n, D, D, L]
        triplet_angular = cb.permute(0, 1, 3, 2).reshape(n, d * ls, d)
        quad = None
        if self.quadruplets:
            assert index.quadruplets is not None, "index built without quadruplets"
            quad = self._quadruplet_features(edge_vec, r, unit, u_pad, n_soft, rbf, index)
        return DirectionalFeatures(
            index=index,
            unit=unit,
            rbf=rbf,
            rbf_triplet=self.rbf_triplet(rbf),
            rbf_atom=self.rbf_atom(rbf),
            rbf_output=self.rbf_output(rbf),
            triplet_radial=triplet_radial,
            triplet_angular=triplet_angular,
            atom_norm=atom_norm,
            quadruplets=quad,
        )

    def _quadruplet_features(
        self, edge_vec: Tensor, r: Tensor, unit: Tensor, u_pad: Tensor, n_soft: Tensor, rbf: Tensor, index: DirectionalIndex
    ) -> QuadrupletFeatures:
        q = index.quadruplets
        assert q is not None
        n, d, n_edges = index.n_atoms, index.max_degree, index.n_edges
        n_q, d_q = q.n_edges, q.table.shape[1]
        big_l, n_lm, ls = self.quadruplet_spherical, self.n_lm, self.num_spherical
        dtype = unit.dtype
        src, tgt = index.edge_index[0], index.edge_index[1]
        r_q = r[q.edge]
        b = unit[q.edge]  # [E_q, 3] direction of the middle edge, x_k - x_v
        e1, e2 = _frames(b)
        # inner triplets j -> k -> v: angle at k between x_v - x_k (= -b) and x_j - x_k
        d_unit = _take_padded(unit, q.inner_edge)  # [E_q, D, 3]
        inner_mask = q.inner_mask.to(dtype)
        cos2 = -(d_unit * b[:, None, :]).sum(-1).clamp(-1.0, 1.0)
        rbf_q = self.radial(r_q, cutoff=self.quadruplet_cutoff)  # [E_q, R]
        rad_q = (rbf_q @ self.cbf_weight).reshape(n_q, self.basis_dim, ls)
        inner_basis = torch.bmm(circular_basis(cos2, n=ls), rad_q.transpose(1, 2)) * inner_mask[..., None]
        dre = (d_unit * e1[:, None, :]).sum(-1)
        dim = (d_unit * e2[:, None, :]).sum(-1)
        delta = _complex_powers(dre, dim, big_l) * inner_mask[..., None]  # [E_q, D, 2L]
        # outer pairs (u -> v, k -> v) in the layout of atom v
        b_pad = _take_padded(b, q.table)  # [n, D_q, 3]
        e1_pad = _take_padded(e1, q.table)
        e2_pad = _take_padded(e2, q.table)
        cos1 = torch.bmm(u_pad, b_pad.transpose(1, 2)).clamp(-1.0, 1.0)  # [n, D, D_q]
        are = torch.bmm(u_pad, e1_pad.transpose(1, 2))
        aim = torch.bmm(u_pad, e2_pad.transpose(1, 2))
        outer = q.outer_mask.to(dtype)
        legendre = legendre_derivative_table(cos1, big_l) * outer[..., None]  # [n, D, D_q, n_lm]
        chan = _channels(big_l, unit.device)  # [n_lm, 2]
        alpha = _complex_powers(are, aim, big_l)[..., chan]  # [n, D, D_q, n_lm, 2]
        g = legendre[..., None] * alpha  # [n, D, D_q, n_lm, 2]
        gamma = g.permute(0, 3, 1, 2, 4).reshape(n * n_lm, d, d_q * 2)
        # excluded j = u quadruplets: their spherical basis, to subtract
        delta_flat = _pad_rows(delta.reshape(n_q * d, 2 * big_l))
        dc = _take(delta_flat, q.correction)[..., chan]  # [n, D, D_q, n_lm, 2]
        correction = (g * dc).sum(-1).permute(0, 1, 3, 2).reshape(n * d, n_lm, d_q)
        radial = (self.rbf_spherical(rbf) @ self.sbf_weight).reshape(n_edges, self.sbf_dim, n_lm)
        # soft quadruplet count of each target: sum over middle edges k -> v of u_q(r_kv) n_k
        env_q = polynomial_envelope(r_q, cutoff=self.quadruplet_cutoff)
        c_soft = scatter_sum(env_q * n_soft[src[q.edge]], tgt[q.edge], n)
        return QuadrupletFeatures(
            inner_basis=inner_basis,
            delta=delta.transpose(1, 2).contiguous(),
            gamma=gamma,
            correction=correction,
            radial=radial,
            norm=torch.rsqrt(1.0 + c_soft)[tgt],
        )


# ============================================================================ aggregations (pure)
def triplet_aggregate(x: Tensor, features: DirectionalFeatures) -> Tensor:
    r"""Sum of input-edge features over the triplets of each output edge, per circular degree.

    .. math:: P_{uv,l} = \frac{1}{\sqrt{1 + n_v}} \sum_{k \in \mathcal N(v)\setminus\{u\}} c_l(\varphi_{uvk})\, x_{kv}

    One batched product per atom: ``[D * L, D] @ [D, C]``.

    Shapes:
        ``x [E, C]`` -> ``[E, num_spherical, C]``.
    """
    idx = features.index
    n, d = idx.n_atoms, idx.max_degree
    ls = features.triplet_radial.shape[2]
    xp = _take_padded(x, idx.table.edge)  # [n, D, C]
    p = torch.bmm(features.triplet_angular, xp)  # [n, D * L, C]
    p = p.reshape(n * d, ls, x.shape[1]).index_select(0, idx.flat_slot)
    return p * features.atom_norm[idx.edge_index[1]][:, None, None]


def quadruplet_aggregate(y: Tensor, features: DirectionalFeatures) -> Tensor:
    r"""Sum of inner-triplet features over the quadruplets of each output edge, per spherical function.

    .. math:: P_{uv,lm} = \frac{1}{\sqrt{1 + c_v}}
              \sum_{k \in \mathcal N_q(v)\setminus\{u\}}\ \sum_{j \in \mathcal N(k)\setminus\{u, v\}}
              s_{lm}(\varphi_{uvk}, \omega_{uvkj}; \varphi_{vkj})\; y_{jk, kv}

    evaluated in factorised form (module docstring): :math:`Z_{kv} = \sum_j (\mathrm{Re},
    \mathrm{Im})(\delta^m)\, y_{jk,kv}` per middle edge, then :math:`\sum_k \Gamma_{uv,kv}\, Z_{kv}`
    per output edge, minus the excluded :math:`j = u` terms.

    Args:
        y: ``[E_q, D, C]`` features of the inner pairs ``(j -> k in slot s of k, k -> v)``.
        features: with quadruplet features.

    Shapes:
        ``y [E_q, D, C]`` -> ``[E, n_lm, C]``.
    """
    idx, qf = features.index, features.quadruplets
    assert qf is not None and idx.quadruplets is not None
    n, d = idx.n_atoms, idx.max_degree
    q = idx.quadruplets
    n_q, d_q = q.n_edges, q.table.shape[1]
    c = y.shape[-1]
    n_lm = qf.radial.shape[2]
    big_l = qf.delta.shape[1] // 2
    z = torch.bmm(qf.delta, y)  # [E_q, 2L, C]
    chan = _channels(big_l, y.device)
    zl = _take_padded(z, q.table).index_select(2, chan.reshape(-1))  # [n, D_q, n_lm * 2, C]
    zl = zl.view(n, d_q, n_lm, 2, c).permute(0, 2, 1, 3, 4).reshape(n * n_lm, d_q * 2, c)
    p = torch.bmm(qf.gamma, zl).reshape(n, n_lm, d, c).permute(0, 2, 1, 3).reshape(n * d, n_lm, c)
    y_flat = _pad_rows(y.reshape(n_q * d, c))
    y_corr = _take(y_flat, q.correction).reshape(n * d, d_q, c)
    p = p - torch.bmm(qf.correction, y_corr)
    return p.index_select(0, idx.flat_slot) * qf.norm[:, None, None]


# ============================================================================ interactions
def _symmetric(x: Tensor, up_ca: Dense, up_ac: Dense, reverse: Tensor) -> Tensor:
    """GemNet's symmetric message passing: :math:`(W_{ca}x_{uv} + W_{ac}x_{vu})/\\sqrt2`; edges without
    a reverse edge (asymmetric capped graphs) get only the first term."""
    x_ac = up_ac(x)
    has = (reverse >= 0).to(x.dtype)[:, None]
    return (up_ca(x) + x_ac.index_select(0, reverse.clamp(min=0)) * has) * (1.0 / math.sqrt(2.0))


class TripletInteraction(nn.Module):
    r"""Edge update from the triplets ``k -> v <- u`` (GemNet-OC's ``TripletInteraction``).

    .. math::

        x_{kv} &= \sigma\big(W_\downarrow\,[\sigma(W_{ba} m_{kv}) \odot W_r e_{kv}]\big) \in \mathbb R^{t},\\
        S_{uv} &= R_{uv}\, P_{uv},\quad R_{uv} = \big[\textstyle\sum_n e_n(r_{uv}) W^{cbf}_{n l c}\big]_{cl},
        \ P_{uv} = \text{triplet\_aggregate}(x),\\
        \text{out}_{uv} &= \big(\sigma(W_{ca}\, B\,\mathrm{vec}\,S_{uv}) + \sigma(W_{ac}\, B\,\mathrm{vec}\,S_{vu})\big)/\sqrt2,

    with the bilinear layer :math:`B \in \mathbb R^{t \times (\text{basis\_dim}\cdot t)}`.

    Shapes:
        ``m [E, width]`` -> ``[E, width]``.
    """

    def __init__(self, width: int, *, basis_dim: int, triplet_dim: int) -> None:
        super().__init__()
        self.dense_ba = Dense(width, width, activation=True)
        self.mlp_rbf = Dense(basis_dim, width, activation=False)
        self.down = Dense(width, triplet_dim, activation=True)
        self.bilinear = Dense(basis_dim * triplet_dim, triplet_dim, activation=False)
        self.up_ca = Dense(triplet_dim, width, activation=True)
        self.up_ac = Dense(triplet_dim, width, activation=True)

    def forward(self, m: Tensor, features: DirectionalFeatures) -> Tensor:
        x = self.down(self.dense_ba(m) * self.mlp_rbf(features.rbf_triplet))
        p = triplet_aggregate(x, features)  # [E, L, t]
        s = torch.bmm(features.triplet_radial, p)  # [E, basis_dim, t]
        x = self.bilinear(s.flatten(1))
        return _symmetric(x, self.up_ca, self.up_ac, features.index.reverse)


class QuadrupletInteraction(nn.Module):
    r"""Edge update from the quadruplets ``j -> k -> v <- u`` (GemNet-OC's ``QuadrupletInteraction``).

    .. math::

        x_{jk} &= \sigma\big(W_\downarrow[\sigma(W_{db} m_{jk}) \odot W_r e_{jk}]\big) \in \mathbb R^{q},\quad
        y_{jk,kv} = x_{jk} \odot W_c\, b_{jk,kv},\\
        S_{uv} &= R^{sbf}_{uv}\, P_{uv},\ P_{uv} = \text{quadruplet\_aggregate}(y),\quad
        \text{out}_{uv} = \big(\sigma(W_{ca} B\,\mathrm{vec}\,S_{uv}) + \sigma(W_{ac} B\,\mathrm{vec}\,S_{vu})\big)/\sqrt2,

    with :math:`b_{jk,kv}` the embedded circular basis of the inner triplet (radius :math:`r_{kv}`,
    angle :math:`\varphi_{vkj}`) and :math:`R^{sbf}_{uv}` the embedded radial part of the spherical basis.

    Shapes:
        ``m [E, width]`` -> ``[E, width]``.
    """

    def __init__(self, width: int, *, basis_dim: int, quadruplet_dim: int, sbf_dim: int) -> None:
        super().__init__()
        self.dense_db = Dense(width, width, activation=True)
        self.mlp_rbf = Dense(basis_dim, width, activation=False)
        self.down = Dense(width, quadruplet_dim, activation=True)
        self.mlp_cbf = Dense(basis_dim, quadruplet_dim, activation=False)
        self.bilinear = Dense(sbf_dim * quadruplet_dim, quadruplet_dim, activation=False)
        self.up_ca = Dense(quadruplet_dim, width, activation=True)
        self.up_ac = Dense(quadruplet_dim, width, activation=True)

    def forward(self, m: Tensor, features: DirectionalFeatures) -> Tensor:
        qf, q = features.quadruplets, features.index.quadruplets
        assert qf is not None and q is not None
        x = self.down(self.dense_db(m) * self.mlp_rbf(features.rbf_triplet))
        y = _take_padded(x, q.inner_edge) * self.mlp_cbf(qf.inner_basis)  # [E_q, D, q]
        p = quadruplet_aggregate(y, features)  # [E, n_lm, q]
        s = torch.bmm(qf.radial, p)  # [E, sbf_dim, q]
        x = self.bilinear(s.flatten(1))
        return _symmetric(x, self.up_ca, self.up_ac, features.index.reverse)


class AtomUpdate(nn.Module):
    r"""Atom update from the edges into each atom (GemNet-OC's ``AtomUpdateBlock``).

    .. math:: h'_v = \mathrm{Res}^{3}\Big(\frac{1}{\sqrt{1 + n_v}}\sum_{u} m_{uv} \odot W_r e_{uv}\Big)

    Forward:
        ``(m [E, width], rbf [E, basis_dim], features) -> [n_atoms, width]`` (``rbf``: the block's
        embedded radial basis, ``features.rbf_atom`` or ``features.rbf_output``).
    """

    def __init__(self, width: int, *, basis_dim: int, n_residual: int = 3) -> None:
        super().__init__()
        self.dense_rbf = Dense(basis_dim, width, activation=False)
        self.layers = _residuals(width, n_residual)

    def forward(self, m: Tensor, rbf: Tensor, features: DirectionalFeatures) -> Tensor:
        idx = features.index
        x = scatter_sum(m * self.dense_rbf(rbf), idx.edge_index[1], idx.n_atoms)
        return self.layers(x * features.atom_norm[:, None])


class DirectionalBlock(nn.Module):
    r"""One directional interaction block (paper eq. 10; GemNet-OC's ``InteractionBlock``).

    With atom embeddings :math:`h \in \mathbb R^{n\times w}`, edge embeddings
    :math:`m \in \mathbb R^{E\times w}`, :math:`\sigma` the scaled SiLU and
    :math:`\mathrm{Res}` the residual layer:

    .. math::

        x &= \big(\sigma(W_{ca} m) + \mathrm{Trip}(m) + \mathrm{Quad}(m)\big)/\sqrt{3}
            \quad(\sqrt 2 \text{ without quadruplets}),\\
        m &\leftarrow \mathrm{Res}^2\big((m + \mathrm{Res}^2(x))/\sqrt2\big),\\
        h &\leftarrow \big(h + \mathrm{AtomUpdate}(m)\big)/\sqrt2,\\
        m &\leftarrow \big(m + \mathrm{Res}(\sigma(W_c[h_u, h_v, m_{uv}]))\big)/\sqrt2 .

    Every input of every layer is E(3)-invariant (distances, :math:`\cos\varphi`, the parity-free
    spherical basis), so :math:`h` and :math:`m` are O(3)-invariant.

    Args:
        width: :math:`w`, the size of atom and edge embeddings.
        basis_dim: size of the embedded bases (GemNet-OC's ``emb_size_rbf = emb_size_cbf``).
        triplet_dim: bottleneck of the triplet interaction (``emb_size_trip_in = _out``).
        quadruplets: include the quadruplet interaction.
        quadruplet_dim: its bottleneck (``emb_size_quad_in = _out``).
        sbf_dim: embedding size of the spherical basis (``emb_size_sbf``).

    Forward:
        ``(h [n_atoms, w], m [E, w], features: DirectionalFeatures) -> (h [n_atoms, w], m [E, w])``.

    Parameters: :math:`21 w^2 + (2\,\text{basis\_dim} + 3t)w + \text{basis\_dim}\,t^2`
    (GemNet-OC's block with 2 residual layers before and after the skip, 3 in the atom update and 1
    after the concatenation), plus :math:`w^2 + (\text{basis\_dim} + 3q)w + \text{basis\_dim}\,q +
    \text{sbf\_dim}\,q^2` with quadruplets.
    """

    def __init__(
        self,
        width: int,
        *,
        basis_dim: int = 16,
        triplet_dim: int = 32,
        quadruplets: bool = True,
        quadruplet_dim: int = 16,
        sbf_dim: int = 8,
    ) -> None:
        super().__init__()
        for name, v in (("width", width), ("basis_dim", basis_dim), ("triplet_dim", triplet_dim),
                        ("quadruplet_dim", quadruplet_dim), ("sbf_dim", sbf_dim)):
            _check_dim(name, v)
        self.width = width
        self.dense_ca = Dense(width, width, activation=True)
        self.triplet = TripletInteraction(width, basis_dim=basis_dim, triplet_dim=triplet_dim)
        self.quadruplet = (
            QuadrupletInteraction(width, basis_dim=basis_dim, quadruplet_dim=quadruplet_dim, sbf_dim=sbf_dim)
            if quadruplets
            else None
        )
        self.before_skip = _residuals(width, 2)
        self.after_skip = _residuals(width, 2)
        self.atom_update = AtomUpdate(width, basis_dim=basis_dim)
        self.concat = Dense(3 * width, width, activation=True)
        self.residual_m = _residuals(width, 1)

    def forward(self, h: Tensor, m: Tensor, features: DirectionalFeatures) -> tuple[Tensor, Tensor]:
        x = self.dense_ca(m) + self.triplet(m, features)
        if self.quadruplet is not None:
            x = (x + self.quadruplet(m, features)) * (1.0 / math.sqrt(3.0))
        else:
            x = x * (1.0 / math.sqrt(2.0))
        x = self.before_skip(x)
        m = self.after_skip((m + x) * (1.0 / math.sqrt(2.0)))
        h = (h + self.atom_update(m, features.rbf_atom, features)) * (1.0 / math.sqrt(2.0))
        src, tgt = features.index.edge_index[0], features.index.edge_index[1]
        m2 = self.residual_m(self.concat(torch.cat([h.index_select(0, src), h.index_select(0, tgt), m], dim=-1)))
        m = (m + m2) * (1.0 / math.sqrt(2.0))
        return rms_normalise(h), rms_normalise(m)


class DirectionalOutput(nn.Module):
    r"""Per-block readout (GemNet-OC's ``OutputBlock``): atom features for the energy, edge features
    for the forces.

    .. math::

        x^E_v &= \mathrm{Res}^3\Big(\big(\mathrm{Res}^3(\tfrac{1}{\sqrt{1+n_v}}\textstyle\sum_u m_{uv}
                 \odot W_r e_{uv}) + h_v\big)/\sqrt2\Big),\\
        x^F_{uv} &= \mathrm{Res}^3(m_{uv}) \odot W'_r e_{uv}\quad(\text{direct forces only}).

    Forward:
        ``(h [n, w], m [E, w], features) -> (x_E [n, w], x_F [E, w] or None)``.
    """

    def __init__(self, width: int, *, basis_dim: int = 16, direct_forces: bool = True) -> None:
        super().__init__()
        self.atom = AtomUpdate(width, basis_dim=basis_dim)
        self.after_atom = _residuals(width, 3)
        if direct_forces:
            self.edge = _residuals(width, 3)
            self.dense_rbf_forces = Dense(basis_dim, width, activation=False)
        else:
            self.edge = None
            self.dense_rbf_forces = None

    def forward(self, h: Tensor, m: Tensor, features: DirectionalFeatures) -> tuple[Tensor, Tensor | None]:
        x = self.atom(m, features.rbf_output, features)
        x_e = self.after_atom((x + h) * (1.0 / math.sqrt(2.0)))
        if self.edge is None:
            return x_e, None
        assert self.dense_rbf_forces is not None
        return x_e, self.edge(m) * self.dense_rbf_forces(features.rbf_output)


class EdgeForceHead(nn.Module):
    r"""Direct forces as a sum over edges of invariant scalars times unit edge vectors.

    .. math:: F_v = \sum_{u \in \mathcal N(v)} f_{uv}\,\hat r_{uv},\qquad
              f = W_o\,\mathrm{Res}^2(\sigma(W_i\,[x^F_0, \dots, x^F_d])),\quad \hat r_{uv} = \frac{x_u - x_v}{\lVert x_u - x_v\rVert}

    O(3)-equivariant because :math:`f_{uv}` is invariant and :math:`\hat r_{uv}` rotates (and
    reflects) with the molecule; translation invariant; an atom without edges gets zero force.

    Args:
        in_features: size of the concatenated edge features (``(depth + 1) * width``).
        width: hidden size.

    Forward:
        ``(state, graph)`` with ``state.edge_scalars [E, in_features]``, ``state.unit [E, 3]``,
        ``state.edge_target [E]``; returns ``[n_atoms, 3]``.
    """

    def __init__(self, in_features: int, width: int) -> None:
        super().__init__()
        self.dense = Dense(in_features, width, activation=True)
        self.layers = _residuals(width, 2)
        self.out = Dense(width, 1, activation=False, readout=True)

    def forward(self, state: Any, graph: Any) -> Tensor:
        f = self.out(self.layers(self.dense(state.edge_scalars)))  # [E, 1]
        return scatter_sum(f * state.unit, state.edge_target, graph.n_atoms)


class DirectionalEnergyHead(nn.Module):
    r"""Per-atom energies from the concatenated output-block features (GemNet-OC's ``out_mlp_E``).

    .. math:: e_v = W_o\,\mathrm{Res}^2\big(\sigma(W_i\,[x^E_{0,v}, \dots, x^E_{d,v}])\big)

    Args:
        in_features: ``(depth + 1) * width``.
        width: hidden size.

    Shapes:
        ``[n_atoms, in_features] -> [n_atoms]``.
    """

    def __init__(self, in_features: int, width: int) -> None:
        super().__init__()
        self.dense = Dense(in_features, width, activation=True)
        self.layers = _residuals(width, 2)
        self.out = Dense(width, 1, activation=False, readout=True)

    def forward(self, scalars: Tensor) -> Tensor:
        return self.out(self.layers(self.dense(scalars))).squeeze(-1)
