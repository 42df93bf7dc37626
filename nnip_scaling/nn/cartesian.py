r"""``CartesianVectorBlock``: multi-channel EGNN (MC-EGNN) layer (paper appendix C.3, eq. 8, 11-12).

Each atom carries scalars :math:`h_v \in \mathbb R^w` and :math:`E` vector channels
:math:`X_v \in \mathbb R^{3\times E}` that transform like positions (:math:`X_v \mapsto Q X_v + t` under
:math:`x \mapsto Qx + t`, :math:`Q \in O(3)`). We store them as *displacements*
:math:`D_v = X_v - x_v \mathbf 1_E^\top` (translation-invariant, better conditioned in float32), so that

.. math:: X_{uv} = X_u - X_v = r_{uv}\mathbf 1_E^\top + D_u - D_v,\qquad r_{uv} = x_u - x_v .

One block computes

.. math::

    m_{u\to v} &= \phi_m\big(h_u, h_v, \|X_{uv}\|_e^2 / c^2, \rho(\|r_{uv}\|)\big) \in \mathbb R^w
        \qquad (11)\\
    X_v^{(t+1)} &= X_v^{(t)} + \frac{1}{|\mathcal N(v)|}\sum_{u\in\mathcal N(v)}
        \frac{1}{E}\, X_{uv}\,\Phi_x(m_{u\to v}),\qquad \Phi_x(m) = \mathrm{reshape}_{E\times E}
        \big(W_x\,\sigma(W_c m + b_c)\big) \qquad (12)\\
    h_v^{(t+1)} &= h_v^{(t)} + \phi_h\Big(h_v, \frac{1}{|\mathcal N(v)|}\sum_{u\in\mathcal N(v)} m_{u\to v}\Big)
        \qquad (8)

(the paper's mean over :math:`\mathcal N(v)`, ``aggregation="mean"``; the smooth forms ``"soft_mean"`` and
``"sum"`` of :mod:`nnip_scaling.nn.aggregation` weight :math:`m_{u\to v}` and the coordinate update by the
envelope :math:`u(r_{uv})` and divide by :math:`1 + \sum_u u(r_{uv})` or :math:`\bar n` instead:
:math:`\phi_m` does not vanish at the cutoff, so the paper's form jumps there twice, through the count
and through the message), where :math:`\|X_{uv}\|_e^2 \in \mathbb R^E` are the channel-wise squared norms (over the 3 spatial
components), :math:`c` the cutoff, :math:`\rho(r) = \mathrm{gauss}_{R}(r)\,u(r)` an optional radial basis of
:math:`R` Gaussians times the polynomial envelope (``n_radial``; 0 disables it),
:math:`\phi_m = \sigma\circ L_2\circ\sigma\circ L_1` and :math:`\phi_h = L_4\circ\sigma\circ L_3` two-layer
MLPs (SiLU :math:`\sigma`), and :math:`W_x: \mathbb R^w \to \mathbb R^{E\times E}` the channel mixer of
eq. 12 (no bias). The hidden layer :math:`\sigma(W_c m + b_c)` in front of :math:`W_x` is EGNN's
coordinate MLP (Satorras et al. 2021); the 1/E factor is the paper's :math:`\Theta(1)` scaling (C.3).
The first layer of :math:`\phi_m` is split per input, :math:`L_1 = W_s h_u + W_t h_v + W_n \|X_{uv}\|^2_e/c^2
+ W_r\rho + b`, and :math:`W_s h, W_t h` are computed per node and gathered per edge (same function).

Symmetry: messages depend only on :math:`O(3)`- and translation-invariants (channel norms, distances,
scalars), :math:`X_{uv}\Phi_x` mixes channels only (the group acts on the spatial index), and
aggregation weights are invariant: the block is :math:`E(3)`-equivariant (rotations *and*
reflections) and permutation-equivariant. An atom with no neighbours keeps :math:`h_v` up to
:math:`\phi_h(h_v, 0)` and keeps its vectors.

μP initialisation (docs/architecture_models.md): hidden layers :math:`\mathcal N(0, 1/\text{fan\_in})`
(:math:`W_s, W_t` with the joint fan-in :math:`2w`), the geometric inputs :math:`W_n, W_r` as input
layers :math:`\mathcal N(0, 1/\text{fan\_in})` with their fixed fan-in, and
:math:`W_x \sim \mathcal N(0, \sigma^2)`, :math:`\sigma^2 = \min(w, E^2)/w^2` (paper C.3).

Parameters per block: :math:`7w^2 + wE^2 + (E + R + 5)\,w`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from nnip_scaling.geometry import gaussian_basis, polynomial_envelope
from nnip_scaling.nn._edges import require_edges
from nnip_scaling.nn.aggregation import aggregate, check_aggregation, check_avg_num_neighbors
from nnip_scaling.nn.mlp import init_hidden_

__all__ = ["CartesianVectorBlock", "VectorChannelInit", "default_vector_channels", "radial_features"]


def default_vector_channels(width: int) -> int:
    r"""Vector channels for scalar width :math:`w`: :math:`E = \lfloor\sqrt w\rfloor` (paper table 4).

    The table's counts are reproduced by :math:`\lfloor\sqrt w\rfloor` and not by rounding (e.g.
    :math:`w = 120, 160, 721` give :math:`E = 10, 12, 26`; docs/models/cartesian.md).
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    return max(1, math.isqrt(width))


def radial_features(dist: Tensor, *, n: int, cutoff: float) -> Tensor:
    r""":math:`\rho(r) = \mathrm{gauss}_n(r)\,u(r)`: ``n`` Gaussians on :math:`[0, c]` times the envelope.

    Shapes:
        ``dist [...]`` -> ``[..., n]``.
    """
    return gaussian_basis(dist, n=n, cutoff=cutoff) * polynomial_envelope(dist, cutoff=cutoff).unsqueeze(-1)


class CartesianVectorBlock(nn.Module):
    r"""One MC-EGNN layer (eq. 11-12 with the node update of eq. 8); see the module docstring.

    Args:
        width: scalar channels :math:`w` (>= 1).
        vector_channels: :math:`E` (>= 1); default :func:`default_vector_channels` (:math:`\lfloor\sqrt w\rfloor`).
        n_radial: Gaussians :math:`R` in the radial input :math:`\rho(\|r_{uv}\|)` (>= 0; 0: none).
        cutoff: :math:`c`, Å (> 0).
        aggregation: ``"mean"`` (eq. 8, 12), ``"soft_mean"`` or ``"sum"`` (:mod:`nnip_scaling.nn.aggregation`).
        avg_num_neighbors: normaliser :math:`\bar n` of ``"sum"``.

    Forward:
        ``h [n_atoms, w]``, ``vectors [n_atoms, 3, E]`` (the displacements :math:`D_v = X_v - x_v`),
        ``edge_index [2, n_edges]`` (row 0 source :math:`u`, row 1 target :math:`v`),
        ``edge_vec [n_edges, 3]`` (:math:`r_{uv}`). Returns ``(h', vectors')`` of the same shapes.

    Shapes:
        ``h [n_atoms, w], vectors [n_atoms, 3, E], edge_index [2, n_edges], edge_vec [n_edges, 3]``
        -> ``([n_atoms, w], [n_atoms, 3, E])``.
    """

    def __init__(
        self,
        width: int,
        *,
        vector_channels: int | None = None,
        n_radial: int = 128,
        cutoff: float = 6.0,
        aggregation: str = "mean",
        avg_num_neighbors: float = 16.0,
    ) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        e = default_vector_channels(width) if vector_channels is None else vector_channels
        if isinstance(e, bool) or not isinstance(e, int) or e < 1:
            raise ValueError(f"vector_channels must be a positive int, got {vector_channels!r}")
        if isinstance(n_radial, bool) or not isinstance(n_radial, int) or n_radial < 0:
            raise ValueError(f"n_radial must be a non-negative int, got {n_radial!r}")
        if not (isinstance(cutoff, (int, float)) and math.isfinite(cutoff) and cutoff > 0):
            raise ValueError(f"cutoff must be a finite positive number, got {cutoff!r}")
        w = width
        self.width, self.vector_channels, self.n_radial, self.cutoff = w, e, n_radial, float(cutoff)
        self.aggregation = check_aggregation(aggregation)
        self.avg_num_neighbors = check_avg_num_neighbors(avg_num_neighbors)
        # phi_m, first layer split per input (eq. 11), second layer
        self.lin_source = nn.Linear(w, w, bias=False)  # W_s
        self.lin_target = nn.Linear(w, w, bias=True)  # W_t, b
        self.lin_norms = nn.Linear(e, w, bias=False)  # W_n
        self.lin_radial = nn.Linear(n_radial, w, bias=False) if n_radial else None  # W_r
        self.lin_message = nn.Linear(w, w)  # L_2
        # Phi_x (eq. 12): hidden layer, then the channel mixer W_x: R^w -> R^{E x E}
        self.lin_coord = nn.Linear(w, w)  # W_c, b_c
        self.lin_mix = nn.Linear(w, e * e, bias=False)  # W_x
        # phi_h (eq. 8 node update)
        self.lin_update1 = nn.Linear(2 * w, w)
        self.lin_update2 = nn.Linear(w, w)
        self.act = nn.SiLU()
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """μP initialisation (module docstring)."""
        w, e = self.width, self.vector_channels
        init_hidden_(self.lin_source, fan_in=2 * w)
        init_hidden_(self.lin_target, fan_in=2 * w)
        init_hidden_(self.lin_norms)
        if self.lin_radial is not None:
            init_hidden_(self.lin_radial)
        for lin in (self.lin_message, self.lin_coord, self.lin_update1, self.lin_update2):
            init_hidden_(lin)
        self.lin_mix.weight.normal_(0.0, math.sqrt(min(w, e * e)) / w)

    def forward(self, h: Tensor, vectors: Tensor, edge_index: Tensor, edge_vec: Tensor) -> tuple[Tensor, Tensor]:
        require_edges("CartesianVectorBlock", edge_index=edge_index, edge_vec=edge_vec)
        w, e = self.width, self.vector_channels
        n = h.shape[0]
        if h.dim() != 2 or h.shape[1] != w:
            raise ValueError(f"h must have shape [n_atoms, {w}], got {tuple(h.shape)}")
        if tuple(vectors.shape) != (n, 3, e):
            raise ValueError(f"vectors must have shape [n_atoms, 3, E] = [{n}, 3, {e}], got {tuple(vectors.shape)}")
        src, dst = edge_index[0], edge_index[1]
        x_uv = edge_vec.unsqueeze(-1) + vectors[src] - vectors[dst]  # [n_edges, 3, E]
        norms = x_uv.square().sum(dim=1) / (self.cutoff * self.cutoff)  # [n_edges, E]
        a = self.lin_source(h)[src] + self.lin_target(h)[dst] + self.lin_norms(norms)
        dist = torch.linalg.vector_norm(edge_vec, dim=-1)
        if self.lin_radial is not None:
            a = a + self.lin_radial(radial_features(dist, n=self.n_radial, cutoff=self.cutoff))
        m = self.act(self.lin_message(self.act(a)))  # [n_edges, w]
        phi = self.lin_mix(self.act(self.lin_coord(m))).view(-1, e, e)  # [n_edges, E, E']
        dx = torch.bmm(x_uv, phi) / e  # [n_edges, 3, E']
        vectors = vectors + self._aggregate(dx, dist, dst, n)
        agg = self._aggregate(m, dist, dst, n)
        h = h + self.lin_update2(self.act(self.lin_update1(torch.cat([h, agg], dim=-1))))
        return h, vectors

    def _aggregate(self, messages: Tensor, dist: Tensor, target: Tensor, n_atoms: int) -> Tensor:
        return aggregate(
            messages, dist, target, n_atoms,
            aggregation=self.aggregation, cutoff=self.cutoff, avg_num_neighbors=self.avg_num_neighbors,
        )

    def extra_repr(self) -> str:
        return (
            f"width={self.width}, vector_channels={self.vector_channels}, n_radial={self.n_radial}, "
            f"cutoff={self.cutoff}, aggregation={self.aggregation!r}"
        )


class VectorChannelInit(nn.Module):
    r"""Initial vector channels from the relative positions.

    Every channel starts at the atom's position plus a learned, radially weighted mean of its relative
    positions, i.e. in displacement form :math:`D_v = X_v - x_v\mathbf 1^\top`:

    .. math::

        D^{(0)}_{v,:,e} = \frac{1}{|\mathcal N(v)|}\sum_{u\in\mathcal N(v)} r_{uv}\,\psi_e(\|r_{uv}\|)
        \quad(\text{or a smooth aggregation}),
        \qquad \psi(r) = W_0\,\rho(r) \in \mathbb R^E,

    with :math:`\rho` the enveloped Gaussian basis of :class:`CartesianVectorBlock` (``n_radial``
    functions; with ``n_radial = 0``, :math:`\psi_e(r) = a_e u(r)` with one weight per channel). The
    channels thus differ from the start (all-equal channels :math:`X_v = x_v` would be mixed apart only
    by :math:`\Phi_x`), and :math:`D^{(0)}` is translation-invariant and :math:`O(3)`-equivariant.
    μP: :math:`W_0 \sim \mathcal N(0, 1/R)` (input layer), :math:`a \sim \mathcal N(0, 1)`.

    Args:
        vector_channels: :math:`E` (>= 1).
        n_radial: :math:`R` (>= 0).
        cutoff: :math:`c`, Å.
        aggregation, avg_num_neighbors: as in :class:`CartesianVectorBlock`.

    Shapes:
        ``edge_index [2, n_edges], edge_vec [n_edges, 3]``, ``n_atoms`` -> ``[n_atoms, 3, E]``.
    """

    #: μP (nnip_scaling.train.mup): ``weight [E]`` scales each channel (no fan-in).
    mup_fan_in: ClassVar[Mapping[str, tuple[int, ...]]] = {"weight": ()}

    def __init__(
        self,
        vector_channels: int,
        *,
        n_radial: int = 128,
        cutoff: float = 6.0,
        aggregation: str = "mean",
        avg_num_neighbors: float = 16.0,
    ) -> None:
        super().__init__()
        if isinstance(vector_channels, bool) or not isinstance(vector_channels, int) or vector_channels < 1:
            raise ValueError(f"vector_channels must be a positive int, got {vector_channels!r}")
        if isinstance(n_radial, bool) or not isinstance(n_radial, int) or n_radial < 0:
            raise ValueError(f"n_radial must be a non-negative int, got {n_radial!r}")
        self.vector_channels, self.n_radial, self.cutoff = vector_channels, n_radial, float(cutoff)
        self.aggregation = check_aggregation(aggregation)
        self.avg_num_neighbors = check_avg_num_neighbors(avg_num_neighbors)
        if n_radial:
            self.lin = nn.Linear(n_radial, vector_channels, bias=False)
            init_hidden_(self.lin)
            self.weight = None
        else:
            self.lin = None
            self.weight = nn.Parameter(torch.randn(vector_channels))

    def forward(self, edge_index: Tensor, edge_vec: Tensor, n_atoms: int) -> Tensor:
        require_edges("VectorChannelInit", edge_index=edge_index, edge_vec=edge_vec)
        dist = torch.linalg.vector_norm(edge_vec, dim=-1)
        if self.lin is not None:
            coeff = self.lin(radial_features(dist, n=self.n_radial, cutoff=self.cutoff))  # [n_edges, E]
        else:
            assert self.weight is not None
            coeff = polynomial_envelope(dist, cutoff=self.cutoff).unsqueeze(-1) * self.weight
        return aggregate(
            edge_vec.unsqueeze(-1) * coeff.unsqueeze(1), dist, edge_index[1], n_atoms,
            aggregation=self.aggregation, cutoff=self.cutoff, avg_num_neighbors=self.avg_num_neighbors,
        )

    def extra_repr(self) -> str:
        return (
            f"vector_channels={self.vector_channels}, n_radial={self.n_radial}, cutoff={self.cutoff}, "
            f"aggregation={self.aggregation!r}"
        )
