"""Interaction blocks of the directional family: triplet and quadruplet interactions, atom update and
the full :class:`DirectionalBlock` (GemNet-OC's ``InteractionBlock``)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nnip_scaling.nn.directional.layout import take_padded
from nnip_scaling.nn.directional.aggregate import quadruplet_aggregate, triplet_aggregate
from nnip_scaling.nn.directional.basis import DirectionalFeatures
from nnip_scaling.nn.directional.layers import Dense, check_dim, residual_stack, rms_normalise
from nnip_scaling.ops import scatter_sum

__all__ = ["AtomUpdate", "DirectionalBlock", "QuadrupletInteraction", "TripletInteraction"]


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
        y = take_padded(x, q.inner_edge) * self.mlp_cbf(qf.inner_basis)  # [E_q, D, q]
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
        self.layers = residual_stack(width, n_residual)

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
            check_dim(name, v)
        self.width = width
        self.dense_ca = Dense(width, width, activation=True)
        self.triplet = TripletInteraction(width, basis_dim=basis_dim, triplet_dim=triplet_dim)
        self.quadruplet = (
            QuadrupletInteraction(width, basis_dim=basis_dim, quadruplet_dim=quadruplet_dim, sbf_dim=sbf_dim)
            if quadruplets
            else None
        )
        self.before_skip = residual_stack(width, 2)
        self.after_skip = residual_stack(width, 2)
        self.atom_update = AtomUpdate(width, basis_dim=basis_dim)
        self.concat = Dense(3 * width, width, activation=True)
        self.residual_m = residual_stack(width, 1)

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
