r"""The SO(2)-sparsified spherical block (eSEN / eSCN style; paper section 2.1 item 4, appendix C.4).

Node features are irreps of degrees ``0..l_max`` with ``C`` channels each, stored l-major as
``x [n_atoms, (l_max+1)**2, C]`` (e3nn order, y polar axis). One :class:`SO2Block` is

.. math::

    x &\leftarrow x + \sum_{u \in \mathcal N(v)} a_{uv}\; D_{uv}^\top\,
        \Phi_2\Big(\sigma_{\text{gate}}\big(\Phi_1\big(\rho(e_{uv}) \odot D_{uv}\,
        [\bar x_u \,\|\, \bar x_v]\big)\big)\Big),
        \qquad \bar x = \mathrm{RMSNorm}_1(x),\\
    x &\leftarrow x + \mathrm{FFN}\big(\mathrm{RMSNorm}_2(x)\big),

where :math:`D_{uv}` holds the rows :math:`|m| \le m_{max}` of the Wigner-D of the edge frame
(:math:`R_{uv}\hat r_{uv} = +\hat y`, :func:`~nnip_scaling.nn.so2.edge_wigner`), :math:`\Phi_1`,
:math:`\Phi_2` are SO(2) linear maps (eq. 21-22, :class:`SO2Linear`), :math:`\rho(e_{uv})` is a radial
MLP of the invariant edge features (radial basis of :math:`|r_{uv}|` and source/target atom
embeddings) that modulates :math:`\Phi_1` per ``(l, |m|, channel)``, :math:`\sigma_{\text{gate}}` is
SiLU on the scalar row and sigmoid gates (computed from the rotation-invariant ``m = 0`` rows) on
every degree ``l >= 1``, and :math:`a_{uv}` is the edge weight (smooth cutoff envelope times the
aggregation normalisation) supplied by the caller.

**Exact equivariance.** Every operation commutes with rotations: the ``m = 0`` rows in the edge
frame are invariants; the SO(2) maps, the shared per-``(l, |m|)`` modulation and the per-degree gates
commute with the roll about the edge axis; the norm uses rotation-invariant statistics; the FFN uses
per-degree channel mixing and scalar gates. No grid sampling of the sphere is involved (fairchem's
eSEN default S2-grid activation is only approximately equivariant, ~2e-3 relative error; see
``shared/NOTES.md``), so outputs are equivariant to float64 rounding (tested to 1e-10).

References: Passaro & Zitnick (2023), *Reducing SO(3) Convolutions to SO(2) for Efficient
Equivariant GNNs* (eSCN); Fu et al. (2025), *Learning Smooth and Expressive Interatomic Potentials*
(eSEN).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from nnip_scaling.nn._edges import require_edges
from nnip_scaling.nn import edge_rotation
from nnip_scaling.nn.edge_rotation import gather_rotate, rotate_scatter, rotate_scatter_add_
from nnip_scaling.nn.so2 import (
    SO2Layout,
    from_edge_frame,
    order_blocks,
    so2_layout,
    so2_linear,
    so2_linear_order,
    so2_real_weight,
)

__all__ = [
    "SO2Linear",
    "SO3Linear",
    "EquivariantRMSNorm",
    "Gate",
    "RadialMLP",
    "EdgeDegreeEmbedding",
    "SO2Block",
]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def _weighted(wigner: Tensor, edge_weight: Tensor, weighted_wigner: Tensor | None) -> Tensor:
    """:math:`a_{uv} D_{uv}` (``wigner * edge_weight``) unless the caller computed it once for all blocks."""
    return wigner * edge_weight[:, None, None] if weighted_wigner is None else weighted_wigner


def _degree_rows(l_max: int) -> tuple[int, ...]:
    """Degree of every row of the l-major layout."""
    return tuple(l for l in range(l_max + 1) for _ in range(2 * l + 1))


class SO2Linear(nn.Module):
    r"""SO(2)-equivariant linear map on edge-frame features (eq. 21-22 of the paper).

    .. math::

        y_0 = W_0 \tilde h_0 + b,\qquad
        \begin{pmatrix} y_{+m} \\ y_{-m}\end{pmatrix} =
        \begin{pmatrix} W^{(1)}_m & -W^{(2)}_m \\ W^{(2)}_m & W^{(1)}_m\end{pmatrix}
        \begin{pmatrix} \tilde h_{+m} \\ \tilde h_{-m}\end{pmatrix},\quad m = 1..m_{max},

    each :math:`W` mixing all degrees ``l >= m`` and all channels of one order. Parameters:
    :math:`(l_{max}+1)^2 C_{in} C_{out}` (+ :math:`(l_{max}+1) C_{out}` bias) for ``m = 0`` and
    :math:`2 n_m^2 C_{in} C_{out}` per ``m >= 1`` (:math:`n_m = l_{max} - m + 1`). The pure function
    is :func:`~nnip_scaling.nn.so2.so2_linear`; the equivalence with the Clebsch-Gordan tensor
    product (eq. 14) is :func:`~nnip_scaling.nn.so2.so2_weights_from_tensor_product`.

    Initialisation (μP hidden layer): :math:`\mathcal N(0, 1/\text{fan\_in})` with fan-in
    :math:`(l_{max}+1)C_{in}` for ``m = 0`` and :math:`2 n_m C_{in}` for ``m >= 1`` (two blocks
    contribute to each output); bias 0.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        l_max: largest degree (>= 0).
        m_max: largest order (``0..l_max``).
        bias: add a learned bias to the ``m = 0`` outputs.

    Shapes:
        ``[E, K, C_in] -> [E, K, C_out]`` (m-major edge-frame layout, ``K = layout.n_rows``).
    """

    #: μP (nnip_scaling.train.mup): ``y = x @ W``, so the fan-in is dim 0 of every weight.
    mup_fan_in: ClassVar[Mapping[str, tuple[int, ...]]] = {"weight_m0": (0,), "weights_m.*": (0,), "bias_m0": ()}

    def __init__(self, in_channels: int, out_channels: int, *, l_max: int, m_max: int, bias: bool = True) -> None:
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.out_channels = _positive_int("out_channels", out_channels)
        self.layout: SO2Layout = so2_layout(l_max, m_max)
        n0 = self.layout.m_sizes[0]
        self.weight_m0 = nn.Parameter(torch.randn(n0 * in_channels, n0 * out_channels) / math.sqrt(n0 * in_channels))
        self.bias_m0 = nn.Parameter(torch.zeros(n0 * out_channels)) if bias else None
        self.weights_m = nn.ParameterList(
            nn.Parameter(torch.randn(n * in_channels, 2 * n * out_channels) / math.sqrt(2 * n * in_channels))
            for n in self.layout.m_sizes[1:]
        )

    def forward(self, x: Tensor, modulation: Tensor | None = None) -> Tensor:
        """``x [E, K, C_in]``, optional ``modulation [E, n_shared, C_in]`` -> ``[E, K, C_out]``."""
        return so2_linear(x, self.weight_m0, self.bias_m0, list(self.weights_m), self.layout, modulation=modulation)

    def extra_repr(self) -> str:
        lay = self.layout
        return f"{self.in_channels} -> {self.out_channels}, l_max={lay.l_max}, m_max={lay.m_max}, bias={self.bias_m0 is not None}"


class SO3Linear(nn.Module):
    r"""Per-degree channel mixing :math:`y_{l} = x_{l} W_l` (+ bias on ``l = 0``), equivariant.

    Args:
        in_channels, out_channels: channel counts.
        l_max: largest degree.
        bias: learned bias on the ``l = 0`` row.

    Shapes:
        ``[N, (l_max+1)**2, C_in] -> [N, (l_max+1)**2, C_out]``.
    """

    #: μP (nnip_scaling.train.mup): ``weight [l_max+1, C_in, C_out]``, fan-in dim 1.
    mup_fan_in: ClassVar[Mapping[str, tuple[int, ...]]] = {"weight": (1,), "bias": ()}

    def __init__(self, in_channels: int, out_channels: int, *, l_max: int, bias: bool = True) -> None:
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.out_channels = _positive_int("out_channels", out_channels)
        self.l_max = l_max
        self.weight = nn.Parameter(torch.randn(l_max + 1, in_channels, out_channels) / math.sqrt(in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        parts = x.split([2 * l + 1 for l in range(self.l_max + 1)], dim=1)
        out = [xl @ wl for xl, wl in zip(parts, self.weight.unbind(0))]
        if self.bias is not None:
            out[0] = out[0] + self.bias
        return torch.cat(out, dim=1)

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}, l_max={self.l_max}, bias={self.bias is not None}"


class EquivariantRMSNorm(nn.Module):
    r"""RMS normalisation over all degrees with per-``(l, channel)`` scales (eSEN's ``rms_norm_sh``).

    .. math::

        \bar x_{0} = x_{0} - \langle x_{0}\rangle_c,\qquad
        s^2 = \Big\langle \frac{1}{l_{max}+1}\sum_{l}\frac{1}{2l+1}\sum_{m} \bar x_{lm c}^2 \Big\rangle_c,\qquad
        y_{lmc} = \frac{\bar x_{lmc}}{\sqrt{s^2 + \epsilon}}\, g_{lc} + [l = 0]\, b_c .

    :math:`s` is rotation invariant (a sum of norms of irreps), so the map is equivariant.

    Shapes:
        ``[N, (l_max+1)**2, C] -> [N, (l_max+1)**2, C]``.
    """

    #: μP (nnip_scaling.train.mup): gains and bias act per channel (no fan-in).
    mup_fan_in: ClassVar[Mapping[str, tuple[int, ...]]] = {"weight": (), "bias": ()}

    def __init__(self, l_max: int, channels: int, *, eps: float = 1e-5) -> None:
        super().__init__()
        self.l_max = l_max
        self.channels = _positive_int("channels", channels)
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(l_max + 1, channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        deg = torch.tensor(_degree_rows(l_max), dtype=torch.int64)
        self.register_buffer("degree_index", deg, persistent=False)
        balance = 1.0 / ((2 * deg.to(torch.float64) + 1) * (l_max + 1))
        self.register_buffer("balance", balance, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        x0, rest = x.split([1, x.shape[1] - 1], dim=1)
        x = torch.cat((x0 - x0.mean(dim=-1, keepdim=True), rest), dim=1)
        s2 = torch.einsum("nic,i->n", x.pow(2), self.balance.to(x.dtype)) / self.channels
        scale = torch.rsqrt(s2 + self.eps)[:, None, None]
        out = x * (scale * self.weight.index_select(0, self.degree_index)[None])
        out0, out_rest = out.split([1, out.shape[1] - 1], dim=1)
        return torch.cat((out0 + self.bias, out_rest), dim=1)

    def extra_repr(self) -> str:
        return f"l_max={self.l_max}, channels={self.channels}, eps={self.eps}"


class Gate(nn.Module):
    r"""Gate nonlinearity: SiLU on the scalar row, sigmoid gates on the rows of degree ``l >= 1``.

    .. math::

        y_{0} = \mathrm{SiLU}(x_{0}),\qquad y_{lm c} = \sigma(g_{l c})\, x_{lm c}\quad (l \ge 1),

    with invariant gate pre-activations :math:`g` (one per degree ``1..l_max`` and channel). Each
    irrep is multiplied by an invariant scalar, so the map is equivariant (and commutes with the
    roll about the edge axis when applied in the edge frame).

    Args:
        row_degrees: the degree of each row of the input; row 0 must be the only degree-0 row
            (true for the l-major layout and the m-major edge-frame layout).

    Shapes:
        x ``[B, R, C]``, gates ``[B, l_max, C]`` -> ``[B, R, C]``.
    """

    def __init__(self, row_degrees: Sequence[int]) -> None:
        super().__init__()
        rows = tuple(int(d) for d in row_degrees)
        if not rows or rows[0] != 0 or any(d < 1 for d in rows[1:]):
            raise ValueError("row_degrees must start with the single degree-0 row followed by degrees >= 1")
        self.register_buffer("gate_index", torch.tensor([d - 1 for d in rows[1:]], dtype=torch.int64), persistent=False)

    def forward(self, x: Tensor, gates: Tensor) -> Tensor:
        g = torch.sigmoid(gates).index_select(1, self.gate_index)
        x0, rest = x.split([1, x.shape[1] - 1], dim=1)
        return torch.cat((torch.nn.functional.silu(x0), rest * g), dim=1)


class RadialMLP(nn.Module):
    r"""Radial network :math:`\mathrm{Linear}\to\mathrm{LayerNorm}\to\mathrm{SiLU}\to\cdots\to\mathrm{Linear}`.

    Acts on invariant edge features only. μP hidden init (:math:`\mathcal N(0, 1/\text{fan\_in})`).

    Shapes:
        ``[E, sizes[0]] -> [E, sizes[-1]]``.
    """

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__()
        sizes = [_positive_int("sizes", s) for s in sizes]
        if len(sizes) < 2:
            raise ValueError("sizes must have at least two entries (in, out)")
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            lin = nn.Linear(a, b)
            with torch.no_grad():
                lin.weight.normal_(0.0, 1.0 / math.sqrt(a))
                lin.bias.zero_()
            layers.append(lin)
            if i < len(sizes) - 2:
                layers += [nn.LayerNorm(b), nn.SiLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def forward_chunks(self, x: Tensor, sizes: Sequence[int]) -> list[Tensor]:
        """``forward(x).split(sizes, dim=-1)``, with the last layer applied per chunk of its output rows:
        no full-width output, and no concatenation of the chunks' gradients in the backward pass."""
        *hidden, last = self.net
        for layer in hidden:
            x = layer(x)
        weights, biases = last.weight.split(list(sizes)), last.bias.split(list(sizes))
        return [nn.functional.linear(x, w, b) for w, b in zip(weights, biases)]


class EdgeDegreeEmbedding(nn.Module):
    r"""Initial equivariant features from the edge directions (eSEN's edge-degree embedding).

    .. math::

        x_v \mathrel{+}= \sum_{u\in\mathcal N(v)} a_{uv}\, D_{uv}^\top
            \big[\rho(e_{uv})_{l,c}\ \text{on the rows } (l, m=0)\big]
        = \sum_{u} a_{uv} \bigoplus_l \frac{Y_l(\hat r_{uv})}{\sqrt{2l+1}}\,\rho(e_{uv})_{l,\cdot},

    i.e. every degree gets the spherical harmonics of the incoming edges weighted by an invariant
    radial/atom-type network. Parameters: one :class:`RadialMLP` ``[F_e, H_e, H_e, (l_max+1) C]``.

    Args:
        channels: ``C``.
        l_max, m_max: degrees of the features / layout of ``wigner``.
        edge_features: size ``F_e`` of the invariant edge features.
        edge_channels: hidden size ``H_e`` of the radial MLP.

    Forward:
        ``(edge_index [2, E], edge_scalars [E, F_e], wigner [E, K, (l_max+1)**2], edge_weight [E],
        n_atoms)`` -> ``[n_atoms, (l_max+1)**2, C]``.
    """

    def __init__(self, channels: int, *, l_max: int, m_max: int, edge_features: int, edge_channels: int) -> None:
        super().__init__()
        self.channels = _positive_int("channels", channels)
        self.layout = so2_layout(l_max, m_max)
        self.radial = RadialMLP([edge_features, edge_channels, edge_channels, (l_max + 1) * channels])

    def forward(self, edge_index: Tensor, edge_scalars: Tensor, wigner: Tensor, edge_weight: Tensor, n_atoms: int) -> Tensor:
        require_edges("EdgeDegreeEmbedding", edge_index=edge_index, wigner=wigner)
        n0 = self.layout.m_sizes[0]
        y0 = self.radial(edge_scalars).reshape(edge_scalars.shape[0], n0, self.channels) * edge_weight[:, None, None]
        return rotate_scatter(y0, edge_index[1], wigner[:, :n0, :], n_atoms)  # m = 0 rows come first (m-major)


class SO2Block(nn.Module):
    r"""One eSEN-style block: SO(2) edge convolution + per-atom feed-forward, each pre-normed with residual.

    .. math::

        x &\leftarrow x + \sum_{u \in \mathcal N(v)} a_{uv}\, D_{uv}^\top\,
            \Phi_2\Big(\sigma_{\text{gate}}\big(\Phi_1\big(\rho(e_{uv}) \odot D_{uv}
            [\bar x_u \| \bar x_v]\big)\big)\Big),\quad \bar x = \mathrm{RMSNorm}_1(x)\\
        x &\leftarrow x + W_2\,\sigma_{\text{gate}}\big(W_1\,\mathrm{RMSNorm}_2(x)\big)

    * :math:`D_{uv}` (``wigner``) rotates into the edge frame keeping the orders :math:`|m| \le
      m_{max}` (paper eq. 15; :func:`~nnip_scaling.nn.so2.edge_wigner`); :math:`D_{uv}^\top` rotates
      back.
    * :math:`\Phi_1`: :class:`SO2Linear` ``2C -> H`` whose input is modulated by the radial MLP
      :math:`\rho(e_{uv})` (one factor per ``(l, |m|, channel)``, shared by ``+m`` and ``-m``);
      its gates come from a linear map of the modulated invariant ``m = 0`` rows.
    * :math:`\Phi_2`: :class:`SO2Linear` ``H -> C``.
    * :math:`a_{uv}` (``edge_weight``): envelope and aggregation normalisation, supplied by the caller.
    * FFN: :class:`SO3Linear` ``C -> H``, :class:`Gate` (gates from a linear map of the scalars),
      :class:`SO3Linear` ``H -> C`` (eSEN's "spectral" atom-wise block; exactly equivariant).

    Args:
        channels: ``C`` channels per ``(l, m)``.
        hidden_channels: ``H`` channels inside the edge convolution and the FFN.
        l_max: largest degree (1..6 tested; e3nn's Wigner machinery supports more).
        m_max: largest order kept in the edge frame (``0..l_max``).
        edge_features: size ``F_e`` of the invariant edge features ``edge_scalars``.
        edge_channels: hidden size of the radial MLP ``[F_e, H_e, H_e, n_shared * 2C]``.

    Forward:
        ``x [N, (l_max+1)**2, C]``, ``edge_index [2, E]`` (row 0 source ``u``, row 1 target ``v``),
        ``edge_scalars [E, F_e]`` (rotation invariant), ``wigner [E, K, (l_max+1)**2]`` (from
        :func:`~nnip_scaling.nn.so2.edge_wigner` with the same ``l_max, m_max``), ``edge_weight [E]``.

    Shapes:
        ``x [N, (l_max+1)**2, C] -> [N, (l_max+1)**2, C]``.
    """

    def __init__(
        self,
        channels: int,
        *,
        hidden_channels: int = 32,
        l_max: int = 4,
        m_max: int = 2,
        edge_features: int,
        edge_channels: int,
    ) -> None:
        super().__init__()
        self.channels = _positive_int("channels", channels)
        self.hidden_channels = _positive_int("hidden_channels", hidden_channels)
        _positive_int("edge_features", edge_features)
        _positive_int("edge_channels", edge_channels)
        _positive_int("l_max", l_max)
        self.layout = so2_layout(l_max, m_max)
        lay = self.layout
        c, h = channels, hidden_channels
        self.norm_1 = EquivariantRMSNorm(l_max, c)
        # SO(2) edge convolution
        self.radial = RadialMLP([edge_features, edge_channels, edge_channels, lay.n_shared * 2 * c])
        self.conv_1 = SO2Linear(2 * c, h, l_max=l_max, m_max=m_max, bias=True)
        self.edge_gate_linear = nn.Linear(lay.m_sizes[0] * 2 * c, l_max * h)
        with torch.no_grad():
            self.edge_gate_linear.weight.normal_(0.0, 1.0 / math.sqrt(lay.m_sizes[0] * 2 * c))
            self.edge_gate_linear.bias.zero_()
        self.conv_2 = SO2Linear(h, c, l_max=l_max, m_max=m_max, bias=True)
        # per-atom feed-forward
        self.norm_2 = EquivariantRMSNorm(l_max, c)
        self.ffn_gate_linear = nn.Linear(c, l_max * h)
        with torch.no_grad():
            self.ffn_gate_linear.weight.normal_(0.0, 1.0 / math.sqrt(c))
            self.ffn_gate_linear.bias.zero_()
        self.ffn_1 = SO3Linear(c, h, l_max=l_max, bias=True)
        self.ffn_gate = Gate(_degree_rows(l_max))
        self.ffn_2 = SO3Linear(h, c, l_max=l_max, bias=True)

    def edge_messages(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_scalars: Tensor,
        wigner: Tensor,
        edge_weight: Tensor,
        *,
        weighted_wigner: Tensor | None = None,
    ) -> Tensor:
        r"""Per-edge messages :math:`a_{uv} D_{uv}^\top \Phi_2(\ldots)` before aggregation, ``[E, (l_max+1)**2, C]``.

        Steps: rotate the source and the target features into the edge frame side by side,
        :math:`[D_{uv}\bar x_u \,\|\, D_{uv}\bar x_v]` (one :func:`~nnip_scaling.nn.edge_rotation.gather_rotate`,
        no edge-sized temporary), split into order blocks; modulate, :math:`\Phi_1` and the gate
        (:meth:`_conv_1_gated`); :math:`\Phi_2`; rotate back with :math:`a_{uv} D_{uv}^\top`
        (``weighted_wigner`` :math:`= a_{uv} D_{uv}`, computed here unless a caller with several blocks
        passes it once for all). :meth:`forward` rotates back and sums at the targets in one
        :func:`~nnip_scaling.nn.edge_rotation.rotate_scatter` instead.
        """
        y = torch.cat(self._edge_frame_messages(x, edge_index, edge_scalars, wigner, self._conv_1_weights()), dim=1)
        return from_edge_frame(y, _weighted(wigner, edge_weight, weighted_wigner))

    def _edge_frame_messages(
        self, x: Tensor, edge_index: Tensor, edge_scalars: Tensor, wigner: Tensor, weights: tuple[list[Tensor], Tensor]
    ) -> list[Tensor]:
        r""":math:`\Phi_2(\sigma_{\text{gate}}(\Phi_1(\ldots)))` in the edge frame, before the rotation back, as
        its order blocks (``[E, n_0, C]``, then ``[E, 2 n_m, C]`` per ``m >= 1``: the m-major rows)."""
        c2 = self.conv_2
        blocks = order_blocks(gather_rotate(x, edge_index, wigner), self.layout)
        (scalar, rest), pairs = self._conv_1_gated(blocks, edge_scalars, weights)
        n_edges, h = scalar.shape[0], self.hidden_channels
        w_scalar, w_rest = c2.weight_m0.split([h, rest.shape[1] * h])  # rows of the scalar / l >= 1 inputs
        y0 = torch.addmm(c2.bias_m0, scalar.reshape(n_edges, h), w_scalar)
        y0 = y0.addmm_(rest.reshape(n_edges, rest.shape[1] * h), w_rest)
        y0 = y0.view(n_edges, self.layout.m_sizes[0], self.channels)
        return [y0, *(so2_linear_order(p, w) for p, w in zip(pairs, c2.weights_m))]

    def _conv_1_weights(self) -> tuple[list[Tensor], Tensor]:
        r""":math:`\Phi_1`'s weight per order and its ``m = 0`` bias, as used by :meth:`_conv_1_gated`.

        The ``m = 0`` weight has the edge-gate map's columns appended (one product gives the ``m = 0``
        outputs and the gate pre-activations); each ``m >= 1`` weight is in the real form of
        :func:`~nnip_scaling.nn.so2.so2_real_weight`. Built from the parameters at every call (small
        matrices, independent of the number of edges).
        """
        c1, gate = self.conv_1, self.edge_gate_linear
        weights = [torch.cat((c1.weight_m0, gate.weight.t()), dim=1)]
        weights += [so2_real_weight(w) for w in c1.weights_m]
        return weights, torch.cat((c1.bias_m0, gate.bias))

    def _conv_1_gated(
        self, blocks: Sequence[Tensor], edge_scalars: Tensor, weights: tuple[list[Tensor], Tensor]
    ) -> tuple[tuple[Tensor, Tensor], list[Tensor]]:
        r""":math:`\sigma_{\text{gate}}(\Phi_1(\rho(e_{uv}) \odot z))` per order block of
        :math:`z = [D_{uv}\bar x_u \| D_{uv}\bar x_v]`.

        The modulation :math:`\rho` has one factor per ``(l, |m|, channel)``, the same on the ``+m`` and
        ``-m`` rows. The gates :math:`\sigma(g_l)` of degree ``l >= 1`` come from the modulated ``m = 0``
        rows (in the same product as :math:`\Phi_1`'s ``m = 0`` outputs) and multiply every row of degree
        ``l`` (``+m`` and ``-m`` alike); the scalar row gets SiLU.

        Returns:
            The ``m = 0`` rows as its scalar row ``[E, 1, H]`` and its rows of degree ``l >= 1``
            ``[E, l_max, H]`` (kept apart: :math:`\Phi_2` multiplies each by its rows of the weight, so
            they are never concatenated), and per ``m >= 1`` the ``\pm m`` rows ``[E, 2 n_m, H]``.
        """
        lay, h = self.layout, self.hidden_channels
        n_edges, c2 = edge_scalars.shape[0], blocks[0].shape[-1]
        rho = self.radial.forward_chunks(edge_scalars, [n * c2 for n in lay.m_sizes])
        weights, bias = weights
        out = []
        for m, (z, r, w) in enumerate(zip(blocks, rho, weights)):
            n = lay.m_sizes[m]
            zm = (z.unflatten(1, (z.shape[1] // n, n)) * r.view(n_edges, 1, n, c2)).flatten(1)
            out.append(torch.addmm(bias, zm, w) if m == 0 else zm @ w)
        y0, pre = out[0].split([lay.m_sizes[0] * h, lay.l_max * h], dim=1)
        gates = torch.sigmoid(pre).view(n_edges, lay.l_max, h)
        scalar, rest = y0.view(n_edges, lay.m_sizes[0], h).split([1, lay.l_max], dim=1)
        pairs = [(y.view(n_edges, 2, n, h) * gates[:, None, m - 1 :]).view(n_edges, 2 * n, h)
                 for m, (n, y) in enumerate(zip(lay.m_sizes[1:], out[1:]), start=1)]
        return (nn.functional.silu(scalar), rest * gates), pairs

    def _convolution(
        self, x: Tensor, edge_index: Tensor, edge_scalars: Tensor, wigner: Tensor, weighted_wigner: Tensor
    ) -> Tensor:
        r"""The summed edge messages :math:`\sum_u a_{uv} D_{uv}^\top \Phi_2(\ldots)` at every atom, ``[N, D, C]``.

        When no autograd graph is recorded (inference under ``torch.no_grad``), the edges are processed
        in chunks of about :data:`~nnip_scaling.nn.edge_rotation.CHUNK_NUMEL` numbers per edge-sized temporary (``[e, D, 2C]``):
        every intermediate then stays small, is reused from the allocator's cache instead of being
        freshly allocated and zero-filled by the kernel, and stays closer to the CPU caches (measured:
        inference 1.3-1.6x faster at ``C = 8..32``; docs/models/spherical.md). With autograd (training,
        conservative forces) or under ``torch.compile`` all edges go at once.
        """
        weights = self._conv_1_weights()
        n_atoms, n_edges = x.shape[0], edge_index.shape[1]
        step = max(1, edge_rotation.CHUNK_NUMEL // (x.shape[1] * 2 * x.shape[2]))
        if torch.is_grad_enabled() or torch.compiler.is_compiling() or n_edges <= step:
            y = self._edge_frame_messages(x, edge_index, edge_scalars, wigner, weights)
            return rotate_scatter(y, edge_index[1], weighted_wigner, n_atoms)
        out = x.new_zeros(x.shape)
        for start in range(0, n_edges, step):
            s = slice(start, start + step)
            y = self._edge_frame_messages(x, edge_index[:, s], edge_scalars[s], wigner[s], weights)
            rotate_scatter_add_(out, y, edge_index[1, s], weighted_wigner[s])
        return out

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_scalars: Tensor,
        wigner: Tensor,
        edge_weight: Tensor,
        *,
        weighted_wigner: Tensor | None = None,
    ) -> Tensor:
        require_edges("SO2Block", edge_index=edge_index, wigner=wigner)
        lay = self.layout
        if x.dim() != 3 or x.shape[1] != lay.dim or x.shape[2] != self.channels:
            raise ValueError(f"x must have shape [n_atoms, {lay.dim}, {self.channels}], got {list(x.shape)}")
        if wigner.dim() != 3 or wigner.shape[1:] != (lay.n_rows, lay.dim):
            raise ValueError(f"wigner must have shape [E, {lay.n_rows}, {lay.dim}], got {list(wigner.shape)}")
        weighted = _weighted(wigner, edge_weight, weighted_wigner)
        x = x + self._convolution(self.norm_1(x), edge_index, edge_scalars, wigner, weighted)
        h = self.norm_2(x)
        gates = self.ffn_gate_linear(h[:, 0, :]).reshape(h.shape[0], lay.l_max, self.hidden_channels)
        return x + self.ffn_2(self.ffn_gate(self.ffn_1(h), gates))

    def extra_repr(self) -> str:
        lay = self.layout
        return f"channels={self.channels}, hidden_channels={self.hidden_channels}, l_max={lay.l_max}, m_max={lay.m_max}"
