r"""The Cartesian-vector family: multi-channel EGNN (paper section 2.1 item 3, appendix C.3, table 4).

.. math::

    h^{(0)}_v = E[z_v],\quad D^{(0)} = \mathrm{VectorChannelInit}(r),\quad
    (h, D)^{(t+1)} = \mathrm{CartesianVectorBlock}^{(t)}(h^{(t)}, D^{(t)}),\\
    E = \sum_v \mathrm{MLP}_e(h^{(d)}_v),\qquad F_v = D^{(d)}_v\,(a + W h^{(d)}_v).

Energy invariant and forces equivariant under :math:`E(3)` (rotations, reflections, translations) and
permutations. Vector channels :math:`E = \lfloor\sqrt w\rfloor` by default (μP-informed scaling of C.3).

Parameters (direct forces, ``n_radial = R``, ``max_z = Z``):

.. math:: N = d\,\big(7w^2 + wE^2 + (E + R + 5)w\big) + RE + Zw + (w^2 + 2w + 1) + (wE + E).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from torch import Tensor, nn

from nnip_scaling.graph import AtomicGraph
from nnip_scaling.models.base import Potential
from nnip_scaling.models.config import AggregatingConfig, ModelConfig, check_positive_int
from nnip_scaling.nn.cartesian import CartesianVectorBlock, VectorChannelInit, default_vector_channels
from nnip_scaling.nn.embedding import AtomEmbedding
from nnip_scaling.nn.heads import EnergyHead, VectorForceHead

__all__ = ["CartesianConfig", "CartesianModel", "CartesianRepresentation", "CartesianState"]


@dataclass(frozen=True, kw_only=True)
class CartesianConfig(AggregatingConfig):
    """Config of MC-EGNN (with the ``aggregation`` options of
    :class:`~nnip_scaling.models.config.AggregatingConfig`: the paper's ``"mean"`` by default with direct
    forces, ``"soft_mean"`` with conservative forces).

    Attributes:
        vector_channels: :math:`E` (>= 1); ``None`` means :math:`\\lfloor\\sqrt{w}\\rfloor`.
        n_radial: Gaussians in the radial input of every message (>= 0; 0 disables it).
    """

    family: ClassVar[str] = "cartesian"
    kind: str = "cartesian"
    vector_channels: int | None = None
    n_radial: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vector_channels is not None:
            check_positive_int("vector_channels", self.vector_channels)
        check_positive_int("n_radial", self.n_radial, minimum=0)

    @property
    def n_vector_channels(self) -> int:
        """The effective :math:`E`."""
        return default_vector_channels(self.width) if self.vector_channels is None else self.vector_channels


class CartesianState(NamedTuple):
    """Invariant ``scalars [n_atoms, w]`` and equivariant displacement channels ``vectors [n_atoms, 3, E]``."""

    scalars: Tensor
    vectors: Tensor


class CartesianRepresentation(nn.Module):
    """Vector-channel init followed by ``depth`` :class:`~nnip_scaling.nn.CartesianVectorBlock` layers.

    Shapes:
        ``h0 [n_atoms, w]`` -> ``CartesianState(scalars [n_atoms, w], vectors [n_atoms, 3, E])``.
    """

    def __init__(
        self,
        width: int,
        depth: int,
        *,
        vector_channels: int,
        n_radial: int,
        cutoff: float,
        aggregation: str = "mean",
        avg_num_neighbors: float = 16.0,
    ) -> None:
        super().__init__()
        agg = dict(aggregation=aggregation, avg_num_neighbors=avg_num_neighbors)
        self.init_vectors = VectorChannelInit(vector_channels, n_radial=n_radial, cutoff=cutoff, **agg)
        self.blocks = nn.ModuleList(
            CartesianVectorBlock(width, vector_channels=vector_channels, n_radial=n_radial, cutoff=cutoff, **agg)
            for _ in range(depth)
        )

    def forward(self, h0: Tensor, graph: AtomicGraph) -> CartesianState:
        assert graph.edge_index is not None and graph.edge_vec is not None
        h = h0
        x = self.init_vectors(graph.edge_index, graph.edge_vec, graph.n_atoms)
        for block in self.blocks:
            h, x = block(h, x, graph.edge_index, graph.edge_vec)
        return CartesianState(h, x)


class CartesianModel(Potential):
    """MC-EGNN: embedding -> vector init -> ``depth`` Cartesian-vector blocks -> energy MLP + vector force head.

    Build with ``build_model("cartesian", width, depth, vector_channels=None, n_radial=128,
    aggregation=None, ...)``.
    """

    config_class: ClassVar[type[ModelConfig]] = CartesianConfig
    ladder_options: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    symmetry_group: ClassVar[str] = "O3"  # rotations and reflections (E(3) with translations)

    def __init__(self, config: CartesianConfig) -> None:
        w, e = config.width, config.n_vector_channels
        super().__init__(
            config,
            embedding=AtomEmbedding(config.max_z, w),
            representation=CartesianRepresentation(
                w,
                config.depth,
                vector_channels=e,
                n_radial=config.n_radial,
                cutoff=config.cutoff,
                aggregation=config.aggregation,
                avg_num_neighbors=config.avg_num_neighbors,
            ),
            energy_head=EnergyHead(w),
            force_head=VectorForceHead(w, e) if config.forces == "direct" else None,
        )
