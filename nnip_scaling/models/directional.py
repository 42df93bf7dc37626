r"""The directional (GemNet-OC-style) family: invariant scalars, four-body messages (paper section 2.1
item 2, appendix C.2, table 6).

.. code-block:: python

    model = build_model("directional", width=64, depth=4, cutoff=10.0, max_neighbors=50,
                        quadruplet_cutoff=5.0, quadruplet_max_neighbors=8)

Architecture (docs/models/directional.md): :math:`h^{(0)}_v = E[z_v]`,
:math:`m^{(0)}_{uv} = \sigma(W[h_u, h_v, e(r_{uv})])`, ``depth`` :class:`~nnip_scaling.nn.DirectionalBlock`
layers, a :class:`~nnip_scaling.nn.directional.DirectionalOutput` after the embedding and after each
block, and the heads

.. math::

    E = \sum_v W_E\,\mathrm{Res}^2\big(\sigma(W [x^E_{0,v}, \dots, x^E_{d,v}])\big),\qquad
    F_v = \sum_u f_{uv}\,\hat r_{uv}\ \ (\text{direct}),\quad\text{or}\quad F = -\partial E/\partial x .

Graphs: the embedding graph is the model's radius graph (``cutoff``, ``max_neighbors``; the paper uses
10 Å and 50 for this family, appendix D); the quadruplet graph is selected from it inside the model
(``quadruplet_cutoff`` <= ``cutoff``, ``quadruplet_max_neighbors``; GemNet-OC's ``qint`` graph).

Parameters: with ``quadruplets=False`` and ``max_z=83`` the count is exactly table 6's
:math:`194 w^2 + 885 w + 86{,}016` (the table is GemNet-OC with fairchem's default flags, i.e. no
quadruplet interaction); the default adds the quadruplet interaction,
:math:`4w^2 + 256w + 12{,}544`, and ``max_z=100`` adds :math:`17w` (docs/models/directional.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from nnip_scaling.graph import AtomicGraph
from nnip_scaling.models.base import Potential
from nnip_scaling.models.config import AUTO, ModelConfig, check_positive_int
from nnip_scaling.nn.directional import (
    Dense,
    DirectionalBasis,
    DirectionalBlock,
    DirectionalEnergyHead,
    DirectionalIndex,
    DirectionalOutput,
    EdgeForceHead,
    build_directional_index,
)
from nnip_scaling.nn.embedding import AtomEmbedding

__all__ = ["DirectionalConfig", "DirectionalIndexer", "DirectionalModel", "DirectionalRepresentation", "DirectionalState"]


#: GemNet-OC's quadruplet-graph cap, the ``"auto"`` value of ``quadruplet_max_neighbors`` for direct forces.
GEMNET_QUADRUPLET_MAX_NEIGHBORS = 8


@dataclass(frozen=True, kw_only=True)
class DirectionalConfig(ModelConfig):
    """Config of the directional family (fields = ``build_model("directional", ...)`` options).

    Attributes:
        quadruplets: include the quadruplet (dihedral) interaction (default ``True``; the paper's
            GemNet-OC runs, judging by table 6, had none).
        quadruplet_cutoff: radius (Å) of the quadruplet graph, ``<= cutoff``; ``None``: ``cutoff``.
        quadruplet_max_neighbors: neighbour cap of the quadruplet graph (ties at the cap kept);
            ``None``: no cap. ``"auto"`` (default): GemNet-OC's 8 with ``forces="direct"``, ``None``
            with ``forces="conservative"`` (a cap that binds makes the energy jump when two
            neighbours swap rank; docs/models/smoothness.md).
        num_radial: Gaussian radial functions (GemNet-OC: 128).
        num_spherical: degrees of the circular basis (GemNet-OC: 7).
        basis_dim: embedding size of the bases (GemNet-OC's ``emb_size_rbf = emb_size_cbf``: 16).
        triplet_dim: triplet bottleneck (``emb_size_trip_in = _out``; 32 reproduces table 6).
        quadruplet_dim: quadruplet bottleneck (``emb_size_quad_in = _out``).
        quadruplet_spherical: degrees of the spherical basis (``l < quadruplet_spherical``).
        sbf_dim: embedding size of the spherical basis (``emb_size_sbf``).
    """

    family: ClassVar[str] = "directional"
    kind: str = "directional"
    quadruplets: bool = True
    quadruplet_cutoff: float | None = None
    quadruplet_max_neighbors: int | None | str = AUTO
    num_radial: int = 128
    num_spherical: int = 7
    basis_dim: int = 16
    triplet_dim: int = 32
    quadruplet_dim: int = 16
    quadruplet_spherical: int = 4
    sbf_dim: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.quadruplets, bool):
            raise TypeError(f"quadruplets must be a bool, got {type(self.quadruplets).__name__}")
        if self.quadruplet_cutoff is not None:
            qc = self.quadruplet_cutoff
            if isinstance(qc, bool) or not isinstance(qc, (int, float)):
                raise TypeError(f"quadruplet_cutoff must be a number or None, got {type(qc).__name__}")
            if not (math.isfinite(qc) and 0 < qc <= self.cutoff):
                raise ValueError(f"quadruplet_cutoff must lie in (0, cutoff={self.cutoff}] Å, got {qc!r}")
            object.__setattr__(self, "quadruplet_cutoff", float(qc))
        if self.quadruplet_max_neighbors == AUTO:
            auto = None if self.forces == "conservative" else GEMNET_QUADRUPLET_MAX_NEIGHBORS
            object.__setattr__(self, "quadruplet_max_neighbors", auto)
        if self.quadruplet_max_neighbors is not None:
            check_positive_int("quadruplet_max_neighbors", self.quadruplet_max_neighbors)
        for name in ("num_radial", "num_spherical", "basis_dim", "triplet_dim", "quadruplet_dim",
                     "quadruplet_spherical", "sbf_dim"):
            check_positive_int(name, getattr(self, name))


class DirectionalState(NamedTuple):
    """What the directional representation hands to its heads.

    Attributes:
        scalars: ``[n_atoms, (depth + 1) * width]`` invariant atom features (all output blocks).
        edge_scalars: ``[E, (depth + 1) * width]`` invariant edge features, or ``None`` (conservative).
        unit: ``[E, 3]`` unit edge vectors :math:`\\hat r_{uv}`.
        edge_target: ``[E]`` target atom of each edge.
    """

    scalars: Tensor
    edge_scalars: Tensor | None
    unit: Tensor
    edge_target: Tensor


class DirectionalIndexer(nn.Module):
    """Builds the :class:`~nnip_scaling.nn.directional.DirectionalIndex` of a graph (no parameters).

    A module of its own so that a FLOP count attributes graph bookkeeping to it
    (``report.by_module["representation.indexer"]``: the edge lengths and comparisons of the
    quadruplet-graph selection, O(E)); everything else in it is integer work (0 FLOPs).
    """

    def __init__(self, *, quadruplets: bool, quadruplet_cutoff: float | None, quadruplet_max_neighbors: int | None) -> None:
        super().__init__()
        self.quadruplets = quadruplets
        self.quadruplet_cutoff = quadruplet_cutoff
        self.quadruplet_max_neighbors = quadruplet_max_neighbors

    def forward(self, graph: AtomicGraph) -> DirectionalIndex:
        assert graph.edge_index is not None and graph.edge_vec is not None
        with torch.no_grad():
            ev = graph.edge_vec.detach()
            length = torch.sqrt((ev * ev).sum(-1))
            return build_directional_index(
                graph.edge_index,
                length,
                graph.n_atoms,
                quadruplets=self.quadruplets,
                quadruplet_cutoff=self.quadruplet_cutoff,
                quadruplet_max_neighbors=self.quadruplet_max_neighbors,
            )


class DirectionalRepresentation(nn.Module):
    r"""Edge embedding, ``depth`` directional blocks and ``depth + 1`` output blocks.

    Shapes:
        ``h0 [n_atoms, w]``, graph with ``E`` edges -> :class:`DirectionalState` with ``scalars
        [n_atoms, (depth+1) w]`` and ``edge_scalars [E, (depth+1) w]``.
    """

    def __init__(self, config: DirectionalConfig) -> None:
        super().__init__()
        w, c = config.width, config
        direct = config.forces == "direct"
        self.indexer = DirectionalIndexer(
            quadruplets=c.quadruplets,
            quadruplet_cutoff=c.quadruplet_cutoff if c.quadruplet_cutoff is not None else c.cutoff,
            quadruplet_max_neighbors=c.quadruplet_max_neighbors,
        )
        self.basis = DirectionalBasis(
            c.cutoff,
            num_radial=c.num_radial,
            num_spherical=c.num_spherical,
            basis_dim=c.basis_dim,
            quadruplets=c.quadruplets,
            quadruplet_cutoff=c.quadruplet_cutoff,
            quadruplet_spherical=c.quadruplet_spherical,
            sbf_dim=c.sbf_dim,
        )
        self.edge_embedding = Dense(2 * w + c.num_radial, w, activation=True)
        self.blocks = nn.ModuleList(
            DirectionalBlock(
                w,
                basis_dim=c.basis_dim,
                triplet_dim=c.triplet_dim,
                quadruplets=c.quadruplets,
                quadruplet_dim=c.quadruplet_dim,
                sbf_dim=c.sbf_dim,
            )
            for _ in range(c.depth)
        )
        self.outputs = nn.ModuleList(
            DirectionalOutput(w, basis_dim=c.basis_dim, direct_forces=direct) for _ in range(c.depth + 1)
        )

    def forward(self, h0: Tensor, graph: AtomicGraph) -> DirectionalState:
        assert graph.edge_index is not None and graph.edge_vec is not None
        index = self.indexer(graph)
        features = self.basis(graph.edge_vec, index)
        src, tgt = graph.edge_index[0], graph.edge_index[1]
        h = h0
        m = self.edge_embedding(torch.cat([h[src], h[tgt], features.rbf], dim=-1))
        x_e, x_f = self.outputs[0](h, m, features)
        xs_e, xs_f = [x_e], [x_f]
        for block, output in zip(self.blocks, self.outputs[1:]):
            h, m = block(h, m, features)
            x_e, x_f = output(h, m, features)
            xs_e.append(x_e)
            xs_f.append(x_f)
        edge_scalars = None if xs_f[0] is None else torch.cat(xs_f, dim=-1)  # type: ignore[arg-type]
        return DirectionalState(torch.cat(xs_e, dim=-1), edge_scalars, features.unit, tgt)


class DirectionalModel(Potential):
    """GemNet-OC-style directional model; build with ``build_model("directional", width, depth, ...)``."""

    config_class: ClassVar[type[ModelConfig]] = DirectionalConfig
    ladder_options: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    symmetry_group: ClassVar[str] = "O3"  # invariant scalars, parity-free dihedrals

    def __init__(self, config: DirectionalConfig) -> None:
        w, d = config.width, config.depth
        super().__init__(
            config,
            embedding=AtomEmbedding(config.max_z, w),
            representation=DirectionalRepresentation(config),
            energy_head=DirectionalEnergyHead((d + 1) * w, w),
            force_head=EdgeForceHead((d + 1) * w, w) if config.forces == "direct" else None,
        )
