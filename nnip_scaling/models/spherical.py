r"""The spherical (high-order tensor) family: eSEN-style SO(2) message passing (paper section 2.1
item 4, appendix C.4, table 5).

.. math::

    x^{(0)}_v &= E[z_v]\,\mathbf e_{l=0} + \mathrm{EdgeDegreeEmbedding}_v,\qquad
    x^{(t+1)} = \mathrm{SO2Block}^{(t)}(x^{(t)}),\ t = 0..d-1,\\
    E &= \sum_v \mathrm{MLP}_e\big(\mathrm{RMSNorm}(x^{(d)})_{v,\,l=0}\big),\qquad
    F_v = \sum_c w_c\, \mathrm{RMSNorm}(x^{(d)})_{v,\,l=1,\,c}\ \ (\text{direct})
    \quad\text{or}\quad F = -\partial E/\partial x\ \ (\text{conservative}).

Node features ``x [n_atoms, (l_max+1)**2, C]`` carry ``C`` channels for every ``(l, m)``, so the
embedding width of the paper is :math:`w = (l_{max}+1)^2 C`. The invariant edge features
:math:`e_{uv} = [\mathrm{gauss}(|r_{uv}|),\ A_s[z_u],\ A_t[z_v]]` (``num_radial`` Gaussians and two
atom-type tables of size ``edge_channels``) feed every radial MLP. The messages are multiplied by the
smooth polynomial envelope of :math:`|r_{uv}|` and summed over :math:`\mathcal N(v)`, divided by
``avg_num_neighbors`` (``aggregation="sum"``, the eSEN choice and the default for both force modes: the
energy is a smooth function of the positions), by the envelope-weighted count
:math:`1 + \sum_u u(r_{uv})` (``"soft_mean"``, smooth) or by :math:`|\mathcal N(v)|`
(``aggregation="mean"``, the paper's eq. 8, whose energy jumps when a neighbour crosses the cutoff);
:mod:`nnip_scaling.nn.aggregation`.

Everything is exactly SO(3)-equivariant (energy invariant, forces equivariant to float64 rounding;
``tests/models/test_spherical_family.py``); the frame of each edge is fixed up to a roll about the edge
axis, which the SO(2) convolution ignores exactly; ``edge_roll_seed`` draws a random roll per edge
and forward pass to demonstrate it (outputs agree to 1e-10 in float64).

Parameter count (direct forces, ``l_max = 4``, ``m_max = 2``, ``hidden_channels = 32``,
``edge_channels = C``, 64 Gaussians, ``max_z = 100``, depth 12): see :func:`parameter_count` and
docs/models/spherical.md (+1.0% to +2.9% against the paper's table 5 on every rung).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from nnip_scaling.geometry import gaussian_basis, polynomial_envelope
from nnip_scaling.graph import AtomicGraph
from nnip_scaling.models.base import Potential
from nnip_scaling.models.config import AggregatingConfig, ModelConfig, check_positive_int
from nnip_scaling.nn.aggregation import edge_weights
from nnip_scaling.nn.embedding import AtomEmbedding
from nnip_scaling.nn.heads import EnergyHead
from nnip_scaling.nn.so2 import edge_wigner, so2_layout
from nnip_scaling.nn.spherical import EdgeDegreeEmbedding, EquivariantRMSNorm, SO2Block

__all__ = [
    "SphericalConfig",
    "SphericalState",
    "SphericalRepresentation",
    "SphericalForceHead",
    "SphericalModel",
    "parameter_count",
]

@dataclass(frozen=True, kw_only=True)
class SphericalConfig(AggregatingConfig):
    r"""Config of the spherical family (fields = ``build_model("spherical", ...)`` options).

    Attributes:
        width: channels ``C`` per ``(l, m)`` (the paper's "# Channels").
        l_max: largest degree, 1..6 (default 4).
        m_max: largest order in the edge frame, ``0..l_max``; ``None`` means ``min(2, l_max)``
            (the paper: 2).
        hidden_channels: channels inside the SO(2) convolution and the FFN (paper: 32).
        edge_channels: hidden size of the radial MLPs and of the two atom-type edge tables;
            ``None`` means ``width`` (this reproduces the ``C**2`` term of table 5).
        num_radial: number of Gaussians of the distance expansion.
        aggregation: ``"sum"`` (divided by ``avg_num_neighbors``; smooth energy), ``"soft_mean"``
            (smooth) or ``"mean"`` (eq. 8, jumps at the cutoff); ``None`` (default): ``"sum"`` for
            both force modes (the form the study trains is already smooth).
        avg_num_neighbors: normaliser of the ``"sum"`` aggregation (> 0).
        edge_roll_seed: ``None`` (default): fixed edge frames. An int: every forward pass rolls each
            edge frame by a random angle about the edge axis, drawn from a ``torch.Generator`` seeded
            with this value and owned by the model (the outputs do not change beyond rounding).
    """

    family: ClassVar[str] = "spherical"
    direct_aggregation: ClassVar[str] = "sum"
    conservative_aggregation: ClassVar[str] = "sum"
    kind: str = "spherical"
    l_max: int = 4
    m_max: int | None = None
    hidden_channels: int = 32
    edge_channels: int | None = None
    num_radial: int = 64
    edge_roll_seed: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int("l_max", self.l_max)
        if self.l_max > 6:
            raise ValueError(f"l_max must be in 1..6, got {self.l_max}")
        if self.m_max is None:
            object.__setattr__(self, "m_max", min(2, self.l_max))
        check_positive_int("m_max", self.m_max, minimum=0)
        if self.m_max > self.l_max:
            raise ValueError(f"m_max must be <= l_max = {self.l_max}, got {self.m_max}")
        check_positive_int("hidden_channels", self.hidden_channels)
        if self.edge_channels is None:
            object.__setattr__(self, "edge_channels", self.width)
        check_positive_int("edge_channels", self.edge_channels)
        check_positive_int("num_radial", self.num_radial)
        if self.edge_roll_seed is not None:
            if isinstance(self.edge_roll_seed, bool) or not isinstance(self.edge_roll_seed, int):
                raise TypeError(f"edge_roll_seed must be None or an int, got {type(self.edge_roll_seed).__name__}")
            if self.edge_roll_seed < 0:
                raise ValueError(f"edge_roll_seed must be >= 0, got {self.edge_roll_seed}")


class SphericalState(NamedTuple):
    """Output of :class:`SphericalRepresentation`.

    Attributes:
        scalars: ``[n_atoms, C]``, the ``l = 0`` row (rotation invariant), for the energy head.
        features: ``[n_atoms, (l_max+1)**2, C]``, all degrees (the force head reads ``l = 1``).
    """

    scalars: Tensor
    features: Tensor


class SphericalRepresentation(nn.Module):
    r"""Edge features and frames, edge-degree embedding, ``depth`` :class:`~nnip_scaling.nn.SO2Block` s,
    final :class:`~nnip_scaling.nn.spherical.EquivariantRMSNorm`.

    The Wigner-D rows of every edge frame are computed once per forward pass and shared by all
    blocks.

    Shapes:
        ``h0 [n_atoms, C]`` (atom embedding, placed on ``l = 0``) ->
        ``SphericalState(scalars [n_atoms, C], features [n_atoms, (l_max+1)**2, C])``.
    """

    def __init__(self, config: SphericalConfig) -> None:
        super().__init__()
        c, ec = config.width, config.edge_channels
        assert config.m_max is not None and ec is not None
        self.channels = c
        self.cutoff = config.cutoff
        self.num_radial = config.num_radial
        self.aggregation = config.aggregation
        self.avg_num_neighbors = config.avg_num_neighbors
        self.layout = so2_layout(config.l_max, config.m_max)
        self.source_embedding = AtomEmbedding(config.max_z, ec)
        self.target_embedding = AtomEmbedding(config.max_z, ec)
        edge_features = config.num_radial + 2 * ec
        self.edge_degree_embedding = EdgeDegreeEmbedding(
            c, l_max=config.l_max, m_max=config.m_max, edge_features=edge_features, edge_channels=ec
        )
        self.blocks = nn.ModuleList(
            SO2Block(
                c,
                hidden_channels=config.hidden_channels,
                l_max=config.l_max,
                m_max=config.m_max,
                edge_features=edge_features,
                edge_channels=ec,
            )
            for _ in range(config.depth)
        )
        self.norm = EquivariantRMSNorm(config.l_max, c)
        self.roll_generator = (
            None if config.edge_roll_seed is None else torch.Generator().manual_seed(config.edge_roll_seed)
        )

    def forward(self, h0: Tensor, graph: AtomicGraph) -> SphericalState:
        assert graph.edge_index is not None and graph.edge_vec is not None
        edge_index, edge_vec = graph.edge_index, graph.edge_vec
        n_atoms, n_edges = h0.shape[0], edge_index.shape[1]
        z = graph.atomic_numbers
        dist = torch.linalg.vector_norm(edge_vec, dim=-1)
        edge_scalars = torch.cat(
            (
                gaussian_basis(dist, n=self.num_radial, cutoff=self.cutoff),
                self.source_embedding(z.index_select(0, edge_index[0])),
                self.target_embedding(z.index_select(0, edge_index[1])),
            ),
            dim=-1,
        )
        weight = edge_weights(
            dist, edge_index[1], n_atoms,
            aggregation=self.aggregation, cutoff=self.cutoff, avg_num_neighbors=self.avg_num_neighbors,
        )
        if self.aggregation == "mean":  # this family's paper form envelopes its messages too
            weight = weight * polynomial_envelope(dist, cutoff=self.cutoff)
        roll = None
        if self.roll_generator is not None:
            roll = torch.rand(n_edges, generator=self.roll_generator, dtype=torch.float64) * (2.0 * math.pi)
            roll = roll.to(dtype=edge_vec.dtype, device=edge_vec.device)
        wigner = edge_wigner(edge_vec, self.layout, roll_angle=roll)
        x = self.edge_degree_embedding(edge_index, edge_scalars, wigner, weight, n_atoms)
        x = torch.cat((x[:, :1, :] + h0[:, None, :], x[:, 1:, :]), dim=1)
        weighted_wigner = wigner * weight[:, None, None]  # a_uv D_uv, shared by every block's rotation back
        for block in self.blocks:
            x = block(x, edge_index, edge_scalars, wigner, weight, weighted_wigner=weighted_wigner)
        x = self.norm(x)
        return SphericalState(scalars=x[:, 0, :], features=x)


class SphericalForceHead(nn.Module):
    r"""Direct, equivariant forces from the ``l = 1`` features: :math:`F_v = \sum_c w_c\, x_{v,1,c}`.

    The three ``l = 1`` components are ordered :math:`(x, y, z)` (e3nn, :math:`D^1(R) = R`), so a
    channel mix with invariant weights is a Cartesian vector that rotates with the input. μP readout
    init :math:`w \sim \mathcal N(0, 1/C^2)`.

    Shapes:
        ``state.features [n_atoms, (l_max+1)**2, C] -> [n_atoms, 3]``.
    """

    #: μP (nnip_scaling.train.mup): a readout, ``F = x_{l=1} @ w``, fan-in = the channels.
    mup_fan_in: ClassVar[Mapping[str, tuple[int, ...]]] = {"weight": (0,)}

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels) / channels)

    def forward(self, state: SphericalState, graph: AtomicGraph | None = None) -> Tensor:
        return state.features[:, 1:4, :] @ self.weight


class SphericalModel(Potential):
    """Spherical (eSEN-style) potential: ``build_model("spherical", width=C, depth, l_max=4, m_max=2, ...)``."""

    config_class: ClassVar[type[ModelConfig]] = SphericalConfig
    ladder_options: ClassVar[Mapping[str, Any]] = MappingProxyType({"l_max": 4, "m_max": 2, "hidden_channels": 32})
    symmetry_group: ClassVar[str] = "SO3"  # by design, like eSCN/eSEN: features carry no parity

    def __init__(self, config: SphericalConfig) -> None:
        c = config.width
        super().__init__(
            config,
            embedding=AtomEmbedding(config.max_z, c),
            representation=SphericalRepresentation(config),
            energy_head=EnergyHead(c, hidden=config.hidden_channels),
            force_head=SphericalForceHead(c) if config.forces == "direct" else None,
        )


def parameter_count(
    width: int,
    depth: int,
    *,
    l_max: int = 4,
    m_max: int = 2,
    hidden_channels: int = 32,
    edge_channels: int | None = None,
    num_radial: int = 64,
    max_z: int = 100,
    forces: str = "direct",
) -> int:
    r"""Closed-form trainable-parameter count of :class:`SphericalModel` (matches ``n_parameters``).

    With :math:`L = l_{max}`, :math:`n_m = L - m + 1`, :math:`S = \sum_{m=0}^{m_{max}} n_m`,
    :math:`H` = ``hidden_channels``, :math:`E_c` = ``edge_channels`` (default ``C``), :math:`G` =
    ``num_radial``, :math:`F_e = G + 2E_c`, and the radial MLP :math:`P(o) = F_e E_c + E_c^2 + 6E_c
    + (E_c + 1)\,o`:

    .. math::

        N = Z C + 2 Z E_c + P\big((L+1)C\big) + d\,\big[\, 2\cdot (L+2)C + P(2SC)
            + \underbrace{(L+1)^2 2CH + (L+1)H + \textstyle\sum_{m\ge1} 2 n_m^2\, 2CH}_{\Phi_1}
            + (L+1)2C\,LH + LH \\
            + \underbrace{(L+1)^2 HC + (L+1)C + \textstyle\sum_{m\ge1} 2 n_m^2 HC}_{\Phi_2}
            + C\,LH + LH + (L+1)(2CH) + H + C \,\big] + (L+2)C + (CH + 2H + 1) + [\text{direct}]\,C ,

    :math:`Z` = ``max_z``, :math:`d` = ``depth``. For table 5's setting (:math:`d = 12, L = 4,
    m_{max} = 2, H = 32, E_c = C, Z = 100`, direct forces):
    :math:`N = 332\,C^2 + (108830 + G)\,C + 5441`, i.e. :math:`332C^2 + 108894C + 5441` with the
    default 64 Gaussians (the paper's table fits :math:`332C^2 + 105180C + 15746`; see
    docs/models/spherical.md for the difference).
    """
    ec = width if edge_channels is None else edge_channels
    c, h, lmax, z = width, hidden_channels, l_max, max_z
    sizes = [lmax - m + 1 for m in range(m_max + 1)]
    shared = sum(sizes)
    f_e = num_radial + 2 * ec

    def radial(out: int) -> int:
        return f_e * ec + ec + 2 * ec + ec * ec + ec + 2 * ec + ec * out + out

    def so2(cin: int, cout: int, bias: bool) -> int:
        n = sizes[0] ** 2 * cin * cout + (sizes[0] * cout if bias else 0)
        return n + sum(2 * s * s * cin * cout for s in sizes[1:])

    norm = (lmax + 1) * c + c
    block = (
        2 * norm
        + radial(shared * 2 * c)
        + so2(2 * c, h, True)
        + sizes[0] * 2 * c * lmax * h + lmax * h
        + so2(h, c, True)
        + c * lmax * h + lmax * h
        + (lmax + 1) * c * h + h
        + (lmax + 1) * h * c + c
    )
    total = z * c + 2 * z * ec + radial((lmax + 1) * c) + depth * block + norm
    total += c * h + h + h + 1  # energy head C -> H -> 1
    if forces == "direct":
        total += c
    return total
