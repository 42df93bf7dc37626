r"""The model skeleton shared by all four families: embedding -> ``depth`` blocks -> heads.

A model is a :class:`Potential` composed of four parts that a family supplies:

.. code-block:: text

    graph ──(edges built here if missing)──▶ z ──embedding──▶ h0 [n_atoms, embedding.dim]
          ──representation(h0, graph)──▶ state          (family-defined, has state.scalars)
          ──energy_head(state.scalars)──▶ e_v [n_atoms] ──sum per graph──▶ energy [n_graphs]
          ──force_head(state, graph)──▶ forces [n_atoms, 3]          (forces="direct")
          or  forces = -dE/dx by autograd                            (forces="conservative")

What a family must provide (the plug-in contract; also in docs/architecture_models.md):

1. a **config** dataclass ``<Kind>Config(ModelConfig)``: ``@dataclass(frozen=True, kw_only=True)``,
   ``family: ClassVar[str] = "<kind>"``, ``kind: str = "<kind>"``, then its own options as keyword-only
   fields with defaults (validated in ``__post_init__`` after calling ``super().__post_init__()``). Its
   fields are exactly ``build_model``'s keyword arguments for that family.
2. a **model class** ``<Kind>Model(Potential)`` with class attributes ``config_class = <Kind>Config`` and
   ``ladder_options: Mapping[str, Any]`` (family options of the paper's ladder, may be empty),
   ``symmetry_group: str`` (the rotation group the family respects exactly by construction: ``"O3"``,
   ``"SO3"`` or ``"none"``; :func:`~nnip_scaling.testing.assert_equivariant` checks it by default), and an
   ``__init__(self, config)`` that builds the parts and calls
   ``super().__init__(config, embedding=..., representation=..., energy_head=..., force_head=...)``.
   It overrides nothing else: forward, edge building, forces, validation and dtype live here.
3. the parts:

   - ``embedding``: an :class:`~nnip_scaling.nn.embedding.AtomEmbedding` (``max_z`` rows, any ``dim``).
   - ``representation``: an ``nn.Module`` with ``forward(h0, graph) -> state`` where ``h0`` is
     ``[n_atoms, embedding.dim]``, ``graph`` always has edges (``edge_index``, ``edge_vec`` =
     :math:`x_u - x_v`, differentiable w.r.t. ``graph.positions`` in conservative mode: derive every
     geometric quantity from ``graph.edge_vec`` or ``graph.positions``), and ``state`` is a family-defined
     ``NamedTuple`` or frozen dataclass with at least ``scalars: Tensor [n_atoms, S]`` (per-atom features
     for the energy head; rotation-invariant for the symmetric families) plus whatever the family's
     force head needs (e.g. vector channels ``[n_atoms, 3, E]``). No string-keyed dicts.
   - ``energy_head``: ``scalars [n_atoms, S] -> [n_atoms]`` per-atom energies
     (usually :class:`~nnip_scaling.nn.heads.EnergyHead`).
   - ``force_head``: ``forward(state, graph) -> [n_atoms, 3]``, or ``None``; it is used only when
     ``config.forces == "direct"`` (pass ``None`` for conservative models so they carry no unused
     parameters).
4. one line in ``nnip_scaling.models.build.FAMILIES`` (``kind -> "module:ClassName"``) and, for the
   ladder, its table in ``nnip_scaling.models.ladders``.

The paper's models predict forces directly (appendix D); ``forces="conservative"`` gives
:math:`F = -\partial E/\partial x` (paper section 2) and works in training (``create_graph``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from nnip_scaling.graph import AtomicGraph
from nnip_scaling.models.config import ModelConfig
from nnip_scaling.nn.embedding import AtomEmbedding
from nnip_scaling.ops import scatter_sum

__all__ = ["ModelOutput", "Potential", "RepresentationState"]


@dataclass(frozen=True, eq=False)
class ModelOutput:
    """What every model returns.

    Attributes:
        energy: ``[n_graphs]`` total energy per graph (eV in the units of the training labels).
        forces: ``[n_atoms, 3]`` forces (eV/Å).
    """

    energy: Tensor
    forces: Tensor


class RepresentationState(Protocol):
    """What a representation returns: at least per-atom scalars ``[n_atoms, S]`` for the energy head."""

    @property
    def scalars(self) -> Tensor: ...


class Potential(nn.Module):
    r"""A complete interatomic potential: ``model(graph) -> ModelOutput``.

    Built by a family class (see the module docstring for the contract); use
    :func:`~nnip_scaling.models.build_model` rather than this constructor.

    Args:
        config: the family's config dataclass (stored as ``self.config``).
        embedding: atomic-number embedding.
        representation: ``(h0, graph) -> state`` with ``state.scalars``.
        energy_head: ``scalars -> [n_atoms]`` per-atom energies.
        force_head: ``(state, graph) -> [n_atoms, 3]``; required iff ``config.forces == "direct"``.

    Forward:
        ``graph`` is an :class:`~nnip_scaling.graph.AtomicGraph` in the model's dtype. If it has no edges,
        or its edges were built with another ``cutoff``/``max_neighbors`` than the config's, edges are
        (re)built with the config's values; edges with unknown settings (``graph.cutoff is None``, built
        by hand) are used as given. The graph is never mutated.

    Shapes:
        graph with ``n_atoms`` atoms in ``n_graphs`` graphs -> ``energy [n_graphs]``,
        ``forces [n_atoms, 3]``.

    Raises:
        TypeError: ``graph`` is not an ``AtomicGraph`` or its dtype differs from the parameters'.
        ValueError: atomic numbers above ``config.max_z``.

    Conservative forces: positions are replaced by a tensor that requires grad
    (``graph.with_positions``; the caller's tensor is reused when it already requires grad, so higher
    derivatives work), and :math:`F = -\partial E/\partial x` is taken with
    ``torch.autograd.grad(..., create_graph=self.training)``: in training the forces are differentiable
    w.r.t. the parameters (force loss); in eval mode the energy and forces are returned detached. This
    works under ``torch.no_grad()`` too (grad is enabled locally).
    """

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    ladder_options: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    #: Rotation group respected exactly by construction: "O3" (rotations and reflections), "SO3"
    #: (rotations only) or "none" (translations and permutations only). Every family sets it.
    symmetry_group: ClassVar[str] = "none"

    def __init__(
        self,
        config: ModelConfig,
        *,
        embedding: AtomEmbedding,
        representation: nn.Module,
        energy_head: nn.Module,
        force_head: nn.Module | None,
    ) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"config must be a {self.config_class.__name__}, got {type(config).__name__}")
        if embedding.max_z != config.max_z:
            raise ValueError(f"embedding.max_z={embedding.max_z} differs from config.max_z={config.max_z}")
        if config.forces == "direct" and force_head is None:
            raise ValueError("force_head is required when config.forces == 'direct'")
        if config.forces == "conservative" and force_head is not None:
            raise ValueError("force_head must be None when config.forces == 'conservative'")
        self.config = config
        self.embedding = embedding
        self.representation = representation
        self.energy_head = energy_head
        self.force_head = force_head
        self.to(config.torch_dtype)

    # ------------------------------------------------------------------ helpers
    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def n_parameters(self) -> int:
        """Number of trainable parameters :math:`N`."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @property
    def param_dtype(self) -> torch.dtype:
        return self.embedding.weight.dtype

    def prepare_graph(self, graph: AtomicGraph) -> AtomicGraph:
        """Validate ``graph`` against the model and make sure it has edges of the config's radius."""
        if not isinstance(graph, AtomicGraph):
            raise TypeError(f"graph must be an AtomicGraph, got {type(graph).__name__}")
        if graph.positions is None:  # pragma: no cover - AtomicGraph validates this already
            raise ValueError("graph has no positions")
        if graph.dtype != self.param_dtype:
            raise TypeError(
                f"graph dtype {graph.dtype} differs from the model's parameter dtype {self.param_dtype}: "
                f"use graph.to(dtype={self.param_dtype}) or build_model(..., dtype=...)"
            )
        z = graph.atomic_numbers
        if z.numel() and not torch.compiler.is_compiling() and int(z.max()) > self.config.max_z:  # eager only
            raise ValueError(
                f"atomic_numbers: found Z={int(z.max())}, above the model's max_z={self.config.max_z}"
            )
        cfg = self.config
        if not graph.has_edges or (
            graph.cutoff is not None and (graph.cutoff != cfg.cutoff or graph.max_neighbors != cfg.max_neighbors)
        ):
            graph = graph.with_edges(cfg.cutoff, cfg.max_neighbors)
        return graph

    def _energy(self, graph: AtomicGraph) -> tuple[Tensor, Any]:
        h0 = self.embedding(graph.atomic_numbers)
        state = self.representation(h0, graph)
        e_atom = self.energy_head(state.scalars)
        energy = scatter_sum(e_atom, graph.batch, graph.n_graphs)
        return energy, state

    def forward(self, graph: AtomicGraph) -> ModelOutput:
        graph = self.prepare_graph(graph)
        if self.config.forces == "direct":
            energy, state = self._energy(graph)
            assert self.force_head is not None
            return ModelOutput(energy=energy, forces=self.force_head(state, graph))
        create_graph = self.training or graph.positions.requires_grad
        with torch.enable_grad():
            pos = graph.positions
            if not pos.requires_grad:
                pos = pos.detach().requires_grad_(True)
            g = graph.with_positions(pos)
            energy, _ = self._energy(g)
            if pos.numel():
                (grad,) = torch.autograd.grad(
                    energy.sum(), pos, create_graph=create_graph, allow_unused=True
                )
            else:
                grad = None
            forces = -grad if grad is not None else torch.zeros_like(pos)
        if not create_graph:
            energy, forces = energy.detach(), forces.detach()
        return ModelOutput(energy=energy, forces=forces)

    def extra_repr(self) -> str:
        return f"kind={self.config.kind!r}, width={self.config.width}, depth={self.config.depth}, forces={self.config.forces!r}"
