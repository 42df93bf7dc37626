r"""Symmetry through the loss (paper eq. 2, section 4.4) and through test-time averaging (eq. 23, app. H).

**Symmetry loss** (eq. 2). For :math:`M` rotations :math:`g_i` drawn from the Haar measure of
:math:`SO(3)`,

.. math::

    \mathcal{L}_\text{sym}(\phi_\theta; x, y) = \frac{1}{M} \sum_{i=1}^{M}
        \mathcal{L}\big(\phi_\theta(\rho_\text{in}(g_i)\,x),\ \rho_\text{out}(g_i)\,y\big),

with :math:`\mathcal{L}` the task loss of eq. (1), :math:`\rho_\text{in}` rotating positions about each
molecule's centroid (translations are removed by centring, paper section 2.2) and :math:`\rho_\text{out}`
rotating forces (energies are invariant). Each molecule gets its own rotation per sample. The paper adds
:math:`\lambda \mathcal{L}_\text{sym}` (with :math:`\lambda = 1`, :math:`M = 5`) to the objective of an
unconstrained model; the training loop does this with ``symmetry_weight`` and ``symmetry_rotations``.

Two references :math:`y` are offered:

* ``reference="labels"`` (eq. 2 as written, the training option): :math:`y` are the data labels, so the
  term is the task loss on rotated copies of the batch. For an exactly equivariant model it equals the
  task loss :math:`\mathcal{L}(\phi_\theta(x), y)` itself.
* ``reference="model"``: :math:`y = \phi_\theta(x)` (detached), so the term measures the model's own
  symmetry violation in the units of the loss: it is 0 for an equivariant model and positive otherwise.

**Group averaging** (eq. 23). :class:`GroupAveraged` turns any potential into an approximately
equivariant one at test time, with no training:

.. math::

    f_\theta(x) = \frac{1}{M} \sum_{i=1}^{M} \rho_\text{out}(g_i^{-1})\,\phi_\theta(\rho_\text{in}(g_i)\,x).

Its rotations are drawn once, at construction, from an explicit seed, so its forward pass is
deterministic. Its equivariance error falls like :math:`M^{-1/2}` for a generic model, and is exactly
zero only in the limit; the paper finds its benefit to the loss saturates around :math:`M = 32`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nnip_scaling.geometry import random_rotation
from nnip_scaling.graph import AtomicGraph
from nnip_scaling.models.augment import rotate
from nnip_scaling.models.base import ModelOutput
from nnip_scaling.train.loss import LossTerms, loss_terms

__all__ = ["symmetry_loss", "symmetry_terms", "GroupAveraged", "REFERENCES"]

REFERENCES = ("labels", "model")


def _check_m(name: str, m: Any) -> int:
    if isinstance(m, bool) or not isinstance(m, int):
        raise TypeError(f"{name} must be an int, got {type(m).__name__}")
    if m < 1:
        raise ValueError(f"{name} must be >= 1, got {m}")
    return m


def _prepared(model: Any, graph: AtomicGraph) -> AtomicGraph:
    """Build the model's edges once, before rotating (rotations keep distances, so the same edges
    stay valid and no rounding flip at the cutoff can pass for a symmetry violation)."""
    prepare = getattr(model, "prepare_graph", None)
    return prepare(graph) if callable(prepare) else graph


def symmetry_terms(
    model: Any,
    graph: AtomicGraph,
    n_rotations: int = 5,
    *,
    generator: torch.Generator,
    reference: str = "labels",
    energy_weight: float = 1.0,
    force_weight: float = 1.0,
) -> LossTerms:
    """Per-molecule terms of eq. (2), averaged over the ``n_rotations`` samples.

    Same arguments as :func:`symmetry_loss`.

    Shapes:
        -> ``LossTerms(energy [n_graphs], force [n_graphs])``.
    """
    if not isinstance(graph, AtomicGraph):
        raise TypeError(f"graph must be an AtomicGraph, got {type(graph).__name__}")
    m = _check_m("n_rotations", n_rotations)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    graph = _prepared(model, graph)
    if reference == "model":
        with torch.no_grad():
            base = model(graph)
        target = graph.replace(energy=base.energy.detach(), forces=base.forces.detach())
    else:
        if graph.energy is None or graph.forces is None:
            raise ValueError("reference='labels' needs a graph with energy and forces labels")
        target = graph
    e_sum: Tensor | None = None
    f_sum: Tensor | None = None
    for _ in range(m):
        rot = random_rotation(graph.n_graphs, generator=generator, dtype=torch.float64)
        g = rotate(target, rot)
        out = model(g)
        t = loss_terms(out.energy, out.forces, g, energy_weight=energy_weight, force_weight=force_weight)
        e_sum = t.energy if e_sum is None else e_sum + t.energy
        f_sum = t.force if f_sum is None else f_sum + t.force
    assert e_sum is not None and f_sum is not None
    return LossTerms(energy=e_sum / m, force=f_sum / m)


def symmetry_loss(
    model: Any,
    graph: AtomicGraph,
    n_rotations: int = 5,
    *,
    generator: torch.Generator,
    reference: str = "labels",
    energy_weight: float = 1.0,
    force_weight: float = 1.0,
) -> Tensor:
    r"""The symmetry loss of eq. (2): the mean over molecules and ``n_rotations`` Haar rotations of the
    eq. (1) loss on rotated inputs against rotated references.

    Args:
        model: a potential, ``model(graph) -> ModelOutput``.
        graph: the batch (with labels for ``reference="labels"``).
        n_rotations: :math:`M` (>= 1; the paper: 5).
        generator: source of the rotations (one per molecule per sample).
        reference: ``"labels"`` (eq. 2, the training option) or ``"model"`` (the model's own detached
            prediction on the unrotated batch: a symmetry-violation measure, 0 for an equivariant model).
        energy_weight, force_weight: :math:`\lambda_e, \lambda_f` of eq. (1).

    Returns:
        a scalar tensor, differentiable w.r.t. the model's parameters.

    Shapes:
        -> ``[]``.

    Raises:
        TypeError / ValueError: bad arguments (named).
    """
    terms = symmetry_terms(model, graph, n_rotations, generator=generator, reference=reference,
                           energy_weight=energy_weight, force_weight=force_weight)
    return terms.total.mean()


class GroupAveraged(nn.Module):
    r"""Test-time group averaging of a potential over :math:`M` fixed Haar rotations (paper eq. 23).

    Args:
        model: the potential :math:`\phi_\theta` (``model(graph) -> ModelOutput``).
        n_rotations: :math:`M` (>= 1).
        seed: seed of the ``torch.Generator`` the rotations are drawn from (once, at construction).

    Forward:
        ``graph -> ModelOutput`` with energy :math:`\frac1M\sum_i e_\theta(g_i x)` and forces
        :math:`\frac1M\sum_i g_i^{-1} f_\theta(g_i x)`. Each molecule is rotated about its own centroid;
        all molecules of a batch use the same :math:`M` rotations. Edges are built once (by the wrapped
        model's ``prepare_graph`` when it has one) and reused for every rotation.

    Shapes:
        graph with ``n_atoms`` atoms in ``n_graphs`` graphs -> ``energy [n_graphs]``, ``forces [n_atoms, 3]``;
        buffer ``rotations [M, 3, 3]`` (float64).

    Cost: :math:`M` forward passes of the wrapped model.
    """

    rotations: Tensor

    def __init__(self, model: nn.Module, n_rotations: int, *, seed: int = 0) -> None:
        super().__init__()
        if not callable(model):
            raise TypeError(f"model must be callable (graph -> ModelOutput), got {type(model).__name__}")
        m = _check_m("n_rotations", n_rotations)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.model = model
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("rotations", random_rotation(m, generator=gen, dtype=torch.float64), persistent=False)

    @property
    def n_rotations(self) -> int:
        return int(self.rotations.shape[0])

    def prepare_graph(self, graph: AtomicGraph) -> AtomicGraph:
        """The wrapped model's graph preparation (edges), if it has one."""
        return _prepared(self.model, graph)

    def forward(self, graph: AtomicGraph) -> ModelOutput:
        if not isinstance(graph, AtomicGraph):
            raise TypeError(f"graph must be an AtomicGraph, got {type(graph).__name__}")
        graph = self.prepare_graph(graph)
        energy: Tensor | None = None
        forces: Tensor | None = None
        for i in range(self.n_rotations):
            rot = self.rotations[i].to(device=graph.device, dtype=graph.dtype)
            out = self.model(rotate(graph, rot))
            back = out.forces @ rot  # rows f^T R  ==  (R^T f)^T: rotate the forces back
            energy = out.energy if energy is None else energy + out.energy
            forces = back if forces is None else forces + back
        assert energy is not None and forces is not None
        return ModelOutput(energy=energy / self.n_rotations, forces=forces / self.n_rotations)

    def extra_repr(self) -> str:
        return f"n_rotations={self.n_rotations}"
