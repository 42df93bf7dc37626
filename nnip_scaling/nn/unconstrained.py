r"""``UnconstrainedBlock``: message passing on raw relative positions (paper appendix C.1, eq. 8-9).

.. math::

    m_{u\to v} = \phi_m\big(h_u, h_v, r_{uv}, \|r_{uv}\|\big)
               = \sigma\big(W_s h_u + W_t h_v + W_g\,[\hat r_{uv},\ \|r_{uv}\|/c] + b\big)
                 \odot W_r\,\rho(\|r_{uv}\|) \in \mathbb R^w, \qquad (9)

    h_v^{(t+1)} = h_v^{(t)} + \frac{1}{|\mathcal N(v)|}\sum_{u\in\mathcal N(v)} m_{u\to v}, \qquad (8)

(``aggregation="mean"``, the paper; the smooth forms ``"soft_mean"`` and ``"sum"`` replace eq. 8's
:math:`1/|\mathcal N(v)|` by :math:`u(r_{uv})/(1 + \sum_u u(r_{uv}))` or :math:`u(r_{uv})/\bar n`,
:mod:`nnip_scaling.nn.aggregation`),

with :math:`r_{uv} = x_u - x_v`, :math:`\hat r_{uv} = r_{uv}/\|r_{uv}\|`, :math:`\sigma` = SiLU,
:math:`c` the cutoff, and the node update a residual connection (an atom with no neighbours keeps
:math:`h_v`). The radial filter :math:`\rho: \mathbb R \to \mathbb R^K` is the enveloped Bessel basis

.. math:: \rho_k(r) = u(r)\,\frac{\sin(k\pi r/c)}{r},\qquad k = 1..K,

(:func:`~nnip_scaling.geometry.bessel_basis` rescaled by :math:`\sqrt{c/2}`, times the polynomial envelope
:math:`u` of :func:`~nnip_scaling.geometry.polynomial_envelope`), and :math:`W_r \in \mathbb R^{w\times K}`
is learned.

Why the filter and :math:`\hat r` (docs/models/unconstrained.md, "Learning forces"): a direct force
head reads the node features, so they must hold bond-resolved directions such as
:math:`\sum_u g(\|r_{uv}\|)\,\hat r_{uv}`. In the first version, :math:`\phi_m =
\sigma(W[h_u; h_v; r_{uv}/c; \|r_{uv}\|/c])`, the direction entered additively and scaled by the
distance, and the distance only linearly: the aggregated features held little more than the offset of
the neighbours' centroid, dominated by the far neighbours, and the force loss stayed at the zero-force
baseline. The multiplicative radial filter (SchNet-like continuous filter) makes
:math:`m \approx \sigma(a)\,g(r) + \sigma'(a)\,g(r)\,(W_g \hat r)`, a learned radial function times the
direction, and the unit vector gives near (bonded) neighbours the same directional weight as far ones.
This is still eq. 9's MLP on :math:`[h_u, h_v, r_{uv}, \|r_{uv}\|]` (:math:`\hat r_{uv}` and
:math:`\|r_{uv}\|` carry exactly the information of :math:`r_{uv}`), with a radial basis of
:math:`\|r_{uv}\|` as an extra input. The envelope makes every message vanish smoothly at the cutoff
(the :math:`1/|\mathcal N(v)|` of the paper's mean still jumps when the neighbour count changes: use a
smooth ``aggregation`` for molecular dynamics).

The linear part on :math:`[h_u, h_v, \hat r, \|r\|/c]` is split as :math:`W = [W_s\,|\,W_t\,|\,W_g]`,
so :math:`W_s h` and :math:`W_t h` are computed once per *node* and gathered per edge — the same function
as the concatenation, at :math:`O(n w^2 + E w (K + 4))` instead of :math:`O(E w^2)`.

No symmetry constraint, by design: :math:`\hat r_{uv}` enters linearly, so the features are **not**
rotation-invariant (the paper's negative control). Translations (only :math:`r_{uv}` enters) and
permutations (every aggregation form) are respected.

μP init: :math:`W_s, W_t \sim \mathcal N(0, 1/(2w))` (hidden, joint fan-in :math:`2w`),
:math:`W_g \sim \mathcal N(0, 1/4)` and :math:`W_r \sim \mathcal N(0, 1/K)` (input layers: fixed
fan-in), :math:`b = 0`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nnip_scaling.geometry import bessel_basis, polynomial_envelope
from nnip_scaling.nn._edges import require_edges
from nnip_scaling.nn.aggregation import aggregate, check_aggregation, check_avg_num_neighbors

__all__ = ["UnconstrainedBlock", "radial_filter_basis"]


def radial_filter_basis(dist: Tensor, *, n: int, cutoff: float) -> Tensor:
    r""":math:`\rho_k(r) = u(r)\,\sin(k\pi r/c)/r`, :math:`k = 1..n`: the enveloped, rescaled Bessel basis.

    Finite at :math:`r = 0` (limit :math:`k\pi/c`), exactly 0 at and beyond the cutoff, with two
    continuous derivatives there.

    Shapes:
        ``dist [...]`` -> ``[..., n]``.
    """
    basis = bessel_basis(dist, n=n, cutoff=cutoff) * math.sqrt(cutoff / 2.0)
    return basis * polynomial_envelope(dist, cutoff=cutoff).unsqueeze(-1)


class UnconstrainedBlock(nn.Module):
    r"""One unconstrained message-passing layer (eq. 8-9), residual node update.

    Args:
        width: :math:`w`, size of :math:`h_v` (>= 1).
        cutoff: :math:`c` (Å) of the radial filter and of the distance input (> 0).
        n_radial: :math:`K`, Bessel functions in the radial filter :math:`\rho` (>= 1).
        aggregation: ``"mean"`` (eq. 8), ``"soft_mean"`` or ``"sum"`` (:mod:`nnip_scaling.nn.aggregation`).
        avg_num_neighbors: normaliser :math:`\bar n` of ``"sum"``.

    Forward:
        ``h`` ``[n_atoms, w]``, ``edge_index`` ``[2, E]`` (row 0 source :math:`u`, row 1 target
        :math:`v`), ``edge_vec`` ``[E, 3]`` (:math:`r_{uv} = x_u - x_v`, non-zero).

    Shapes:
        ``h [n_atoms, w], edge_index [2, E], edge_vec [E, 3] -> [n_atoms, w]``.

    Parameters: :math:`2w^2 + 4w + w + Kw`.
    """

    def __init__(
        self,
        width: int,
        *,
        cutoff: float = 6.0,
        n_radial: int = 16,
        aggregation: str = "mean",
        avg_num_neighbors: float = 16.0,
    ) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        if not (isinstance(cutoff, (int, float)) and math.isfinite(cutoff) and cutoff > 0):
            raise ValueError(f"cutoff must be a finite positive number, got {cutoff!r}")
        if isinstance(n_radial, bool) or not isinstance(n_radial, int) or n_radial < 1:
            raise ValueError(f"n_radial must be a positive int, got {n_radial!r}")
        self.width = width
        self.cutoff = float(cutoff)
        self.n_radial = n_radial
        self.aggregation = check_aggregation(aggregation)
        self.avg_num_neighbors = check_avg_num_neighbors(avg_num_neighbors)
        self.lin_source = nn.Linear(width, width, bias=False)  # W_s
        self.lin_target = nn.Linear(width, width, bias=True)  # W_t and b
        self.lin_geometry = nn.Linear(4, width, bias=False)  # W_g
        self.lin_radial = nn.Linear(n_radial, width, bias=False)  # W_r
        with torch.no_grad():
            std_h = 1.0 / math.sqrt(2 * width)
            self.lin_source.weight.normal_(0.0, std_h)
            self.lin_target.weight.normal_(0.0, std_h)
            self.lin_target.bias.zero_()
            self.lin_geometry.weight.normal_(0.0, 0.5)
            self.lin_radial.weight.normal_(0.0, 1.0 / math.sqrt(n_radial))
        self.act = nn.SiLU()

    def messages(self, h: Tensor, edge_index: Tensor, edge_vec: Tensor) -> Tensor:
        r"""The messages :math:`m_{u\to v}`, ``[E, w]`` (eq. 9)."""
        src, dst = edge_index[0], edge_index[1]
        dist = torch.linalg.vector_norm(edge_vec, dim=-1, keepdim=True)
        geo = torch.cat([edge_vec / dist, dist / self.cutoff], dim=-1)
        a = self.lin_source(h)[src] + self.lin_target(h)[dst] + self.lin_geometry(geo)
        radial = self.lin_radial(radial_filter_basis(dist.squeeze(-1), n=self.n_radial, cutoff=self.cutoff))
        return self.act(a) * radial

    def forward(self, h: Tensor, edge_index: Tensor, edge_vec: Tensor) -> Tensor:
        require_edges("UnconstrainedBlock", edge_index=edge_index, edge_vec=edge_vec)
        if h.dim() != 2 or h.shape[1] != self.width:
            raise ValueError(f"h must have shape [n_atoms, {self.width}], got {tuple(h.shape)}")
        m = self.messages(h, edge_index, edge_vec)
        dist = torch.linalg.vector_norm(edge_vec, dim=-1)
        agg = aggregate(
            m, dist, edge_index[1], h.shape[0],
            aggregation=self.aggregation, cutoff=self.cutoff, avg_num_neighbors=self.avg_num_neighbors,
        )
        return h + agg

    def extra_repr(self) -> str:
        return f"width={self.width}, cutoff={self.cutoff}, n_radial={self.n_radial}, aggregation={self.aggregation!r}"
