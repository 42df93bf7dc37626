r"""The unconstrained MPNN family (paper section 2.1 item 1, appendix C.1, table 3).

.. math::

    h^{(0)}_v = E[z_v],\quad h^{(t+1)} = \mathrm{UnconstrainedBlock}^{(t)}(h^{(t)}),\ t = 0..d-1,\quad
    E = \sum_v \mathrm{MLP}_e(h^{(d)}_v),\quad F_v = \mathrm{MLP}_f(h^{(d)}_v) \in \mathbb R^3.

No symmetry constraint: neither the energy nor the forces are rotation invariant/equivariant (the
paper's negative control); translations and permutations are respected. Parameters (direct forces):
:math:`N = (2d + 2)w^2 + (21d + 6 + \text{max\_z})\,w + 4` (each block carries a 16-function radial
filter, :math:`16w`), i.e. :math:`12 w^2 + 211 w + 4` at the paper's depth 5 with ``max_z = 100``; table 3
fits :math:`\approx 12 w^2 + 201.5 w` (docs/models/unconstrained.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from torch import Tensor, nn

from nnip_scaling.graph import AtomicGraph
from nnip_scaling.models.base import Potential
from nnip_scaling.models.config import AggregatingConfig, ModelConfig
from nnip_scaling.nn.embedding import AtomEmbedding
from nnip_scaling.nn.heads import EnergyHead, MLPForceHead
from nnip_scaling.nn.unconstrained import UnconstrainedBlock

__all__ = ["UnconstrainedConfig", "UnconstrainedModel", "UnconstrainedRepresentation", "ScalarState"]


@dataclass(frozen=True, kw_only=True)
class UnconstrainedConfig(AggregatingConfig):
    """Config of the unconstrained MPNN: :class:`ModelConfig` plus the ``aggregation`` options of
    :class:`~nnip_scaling.models.config.AggregatingConfig` (default: the paper's ``"mean"`` with direct
    forces, ``"soft_mean"`` with conservative forces)."""

    family: ClassVar[str] = "unconstrained"
    kind: str = "unconstrained"


class ScalarState(NamedTuple):
    """Per-atom features ``scalars [n_atoms, w]`` (not rotation-invariant for this family)."""

    scalars: Tensor


class UnconstrainedRepresentation(nn.Module):
    """``depth`` :class:`~nnip_scaling.nn.UnconstrainedBlock` layers.

    Shapes:
        ``h0 [n_atoms, w]`` -> ``ScalarState(scalars [n_atoms, w])``.
    """

    def __init__(
        self, width: int, depth: int, *, cutoff: float, aggregation: str = "mean", avg_num_neighbors: float = 16.0
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            UnconstrainedBlock(width, cutoff=cutoff, aggregation=aggregation, avg_num_neighbors=avg_num_neighbors)
            for _ in range(depth)
        )

    def forward(self, h0: Tensor, graph: AtomicGraph) -> ScalarState:
        assert graph.edge_index is not None and graph.edge_vec is not None
        h = h0
        for block in self.blocks:
            h = block(h, graph.edge_index, graph.edge_vec)
        return ScalarState(h)


class UnconstrainedModel(Potential):
    """Unconstrained MPNN: embedding -> ``depth`` unconstrained blocks -> energy MLP + force MLP.

    Build with ``build_model("unconstrained", width, depth, ...)``.
    """

    config_class: ClassVar[type[ModelConfig]] = UnconstrainedConfig
    ladder_options: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    symmetry_group: ClassVar[str] = "none"  # translations and permutations only; rotations are learned

    def __init__(self, config: UnconstrainedConfig) -> None:
        w = config.width
        super().__init__(
            config,
            embedding=AtomEmbedding(config.max_z, w),
            representation=UnconstrainedRepresentation(
                w,
                config.depth,
                cutoff=config.cutoff,
                aggregation=config.aggregation,
                avg_num_neighbors=config.avg_num_neighbors,
            ),
            energy_head=EnergyHead(w),
            force_head=MLPForceHead(w) if config.forces == "direct" else None,
        )
