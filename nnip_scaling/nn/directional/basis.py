"""Geometry of the directional blocks: radial, circular and spherical bases and their block-shared
embeddings (:class:`DirectionalBasis` -> :class:`DirectionalFeatures`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nnip_scaling.geometry.angles import circular_basis, legendre_derivative_table, spherical_basis_size
from nnip_scaling.geometry.radial import gaussian_basis, polynomial_envelope
from nnip_scaling.nn.directional.layout import lm_channels, pad_rows, take, take_padded
from nnip_scaling.nn.directional.index import DirectionalIndex
from nnip_scaling.nn.directional.layers import Dense, check_dim
from nnip_scaling.ops import scatter_sum
from nnip_scaling.nn._edges import require_edges

__all__ = ["DirectionalBasis", "DirectionalFeatures", "QuadrupletFeatures", "radial_normalisation"]


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
        self.num_radial = check_dim("num_radial", num_radial)
        self.num_spherical = check_dim("num_spherical", num_spherical)
        self.basis_dim = check_dim("basis_dim", basis_dim)
        self.quadruplets = bool(quadruplets)
        self.quadruplet_spherical = check_dim("quadruplet_spherical", quadruplet_spherical)
        self.sbf_dim = check_dim("sbf_dim", sbf_dim)
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
        require_edges("DirectionalBasis", edge_vec=edge_vec)
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
        u_pad = take_padded(unit, index.table.edge)  # [n, D, 3]
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
        d_unit = take_padded(unit, q.inner_edge)  # [E_q, D, 3]
        inner_mask = q.inner_mask.to(dtype)
        cos2 = -(d_unit * b[:, None, :]).sum(-1).clamp(-1.0, 1.0)
        rbf_q = self.radial(r_q, cutoff=self.quadruplet_cutoff)  # [E_q, R]
        rad_q = (rbf_q @ self.cbf_weight).reshape(n_q, self.basis_dim, ls)
        inner_basis = torch.bmm(circular_basis(cos2, n=ls), rad_q.transpose(1, 2)) * inner_mask[..., None]
        dre = (d_unit * e1[:, None, :]).sum(-1)
        dim = (d_unit * e2[:, None, :]).sum(-1)
        delta = _complex_powers(dre, dim, big_l) * inner_mask[..., None]  # [E_q, D, 2L]
        # outer pairs (u -> v, k -> v) in the layout of atom v
        b_pad = take_padded(b, q.table)  # [n, D_q, 3]
        e1_pad = take_padded(e1, q.table)
        e2_pad = take_padded(e2, q.table)
        cos1 = torch.bmm(u_pad, b_pad.transpose(1, 2)).clamp(-1.0, 1.0)  # [n, D, D_q]
        are = torch.bmm(u_pad, e1_pad.transpose(1, 2))
        aim = torch.bmm(u_pad, e2_pad.transpose(1, 2))
        outer = q.outer_mask.to(dtype)
        legendre = legendre_derivative_table(cos1, big_l) * outer[..., None]  # [n, D, D_q, n_lm]
        chan = lm_channels(big_l, unit.device)  # [n_lm, 2]
        alpha = _complex_powers(are, aim, big_l)[..., chan]  # [n, D, D_q, n_lm, 2]
        g = legendre[..., None] * alpha  # [n, D, D_q, n_lm, 2]
        gamma = g.permute(0, 3, 1, 2, 4).reshape(n * n_lm, d, d_q * 2)
        # excluded j = u quadruplets: their spherical basis, to subtract
        delta_flat = pad_rows(delta.reshape(n_q * d, 2 * big_l))
        dc = take(delta_flat, q.correction)[..., chan]  # [n, D, D_q, n_lm, 2]
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
