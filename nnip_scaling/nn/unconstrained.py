r"""``UnconstrainedBlock``: message passing on raw relative positions (paper appendix C.1, eq. 8-9).

.. math::

    m_{u\to v} = \phi_m\big(h_u, h_v, r_{uv}, \|r_{uv}\|\big)
               = \sigma\big(W_s h_u + W_t h_v + W_g\,[r_{uv}, \|r_{uv}\|]/c + b\big) \in \mathbb R^w, \qquad (9)

    h_v^{(t+1)} = h_v^{(t)} + \frac{1}{|\mathcal N(v)|}\sum_{u\in\mathcal N(v)} m_{u\to v}, \qquad (8)

with :math:`r_{uv} = x_u - x_v`, :math:`\sigma` = SiLU, :math:`c` the cutoff, and the node update a
residual connection (an atom with no neighbours keeps :math:`h_v`). :math:`\phi_m: \mathbb R^{2w+4}\to
\mathbb R^w` is one linear layer on the concatenation :math:`[h_u, h_v, r_{uv}, \|r_{uv}\|]` followed by
SiLU; its linear part is split as :math:`W = [W_s\,|\,W_t\,|\,W_g]`, so :math:`W_s h` and :math:`W_t h`
are computed once per *node* and gathered per edge — the same function as eq. 9, at
:math:`O(n w^2 + E w)` instead of :math:`O(E w^2)`. Dividing the geometric input by the cutoff is a fixed
reparametrisation of :math:`W_g` that keeps it :math:`\Theta(1)`.

A deeper :math:`\phi_m` (``Linear-SiLU-Linear``) would be ``mean`` -> ``Linear`` since a final linear
layer commutes with the mean; with the paper's depth 5 that costs :math:`3w^2` per block, 25% above
table 3's :math:`\approx 12 w^2` total, so we keep the one-layer message (docs/models/unconstrained.md).

No symmetry constraint, by design: :math:`r_{uv}` enters linearly, so the features are **not**
rotation-invariant (the paper's negative control). Translations (only :math:`r_{uv}` enters) and
permutations (mean aggregation) are respected.

μP init: :math:`W_s, W_t \sim \mathcal N(0, 1/(2w))` (hidden, joint fan-in :math:`2w`),
:math:`W_g \sim \mathcal N(0, 1/4)` (an input layer: fixed fan-in 4), :math:`b = 0`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nnip_scaling.ops import scatter_mean

__all__ = ["UnconstrainedBlock"]


class UnconstrainedBlock(nn.Module):
    r"""One unconstrained message-passing layer (eq. 8-9), residual node update.

    Args:
        width: :math:`w`, size of :math:`h_v` (>= 1).
        cutoff: :math:`c` (Å) used to scale the geometric input (> 0).

    Forward:
        ``h`` ``[n_atoms, w]``, ``edge_index`` ``[2, E]`` (row 0 source :math:`u`, row 1 target
        :math:`v`), ``edge_vec`` ``[E, 3]`` (:math:`r_{uv} = x_u - x_v`).

    Shapes:
        ``h [n_atoms, w], edge_index [2, E], edge_vec [E, 3] -> [n_atoms, w]``.

    Parameters: :math:`2w^2 + 4w + w`.
    """

    def __init__(self, width: int, *, cutoff: float = 6.0) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        if not (isinstance(cutoff, (int, float)) and math.isfinite(cutoff) and cutoff > 0):
            raise ValueError(f"cutoff must be a finite positive number, got {cutoff!r}")
        self.width = width
        self.cutoff = float(cutoff)
        self.lin_source = nn.Linear(width, width, bias=False)  # W_s
        self.lin_target = nn.Linear(width, width, bias=True)  # W_t and b
        self.lin_geometry = nn.Linear(4, width, bias=False)  # W_g
        with torch.no_grad():
            std_h = 1.0 / math.sqrt(2 * width)
            self.lin_source.weight.normal_(0.0, std_h)
            self.lin_target.weight.normal_(0.0, std_h)
            self.lin_target.bias.zero_()
            self.lin_geometry.weight.normal_(0.0, 0.5)
        self.act = nn.SiLU()

    def messages(self, h: Tensor, edge_index: Tensor, edge_vec: Tensor) -> Tensor:
        r"""The messages :math:`m_{u\to v}`, ``[E, w]`` (eq. 9)."""
        src, dst = edge_index[0], edge_index[1]
        dist = torch.linalg.vector_norm(edge_vec, dim=-1, keepdim=True)
        geo = torch.cat([edge_vec, dist], dim=-1) / self.cutoff
        a = self.lin_source(h)[src] + self.lin_target(h)[dst] + self.lin_geometry(geo)
        return self.act(a)

    def forward(self, h: Tensor, edge_index: Tensor, edge_vec: Tensor) -> Tensor:
        if h.dim() != 2 or h.shape[1] != self.width:
            raise ValueError(f"h must have shape [n_atoms, {self.width}], got {tuple(h.shape)}")
        m = self.messages(h, edge_index, edge_vec)
        return h + scatter_mean(m, edge_index[1], h.shape[0])

    def extra_repr(self) -> str:
        return f"width={self.width}, cutoff={self.cutoff}"
