r"""Where the parameters of a model sit, and the κ this predicts (paper section 4.1, eq. 3).

A parameter applied to every edge costs one multiply-add per element per edge; one applied to every
atom, one per atom. If all FLOPs were such parameter applications, the forward FLOPs per atom would be

.. math::

    \frac{C_\text{fwd}}{D} = 2\Big(P_\text{node} + P_\text{edge}\,\bar k + P_\text{triplet}\,\bar t
        + P_\text{graph}\,\frac{G}{D} + P_\text{other}\Big),\qquad
    \kappa_\text{pred} = \frac{C_\text{fwd}}{N D},

with :math:`\bar k` = directed edges per atom (mean neighbours), :math:`\bar t` = triplets
``k -> v <- u`` (``k != u``) per atom, :math:`G/D` graphs per atom, and :math:`P_d` the parameters
applied per item of domain ``d``, each weighted by how often it is applied per item (its
*multiplicity*) and by its cost per application relative to a multiply-add (1 for a weight in a
matrix product, 1/2 for a bias or gain, which costs 1 FLOP, not 2). :math:`P_\text{other}` collects
applications whose row count is none of these (already per atom, at the traced graph). Parameters
that are only looked up (embedding tables) cost nothing and are in :math:`N` but in no :math:`P_d`.

**How the placement is derived.** Not from a per-family table (it would drift from the code), but
from what runs: :func:`parameter_placement` runs one forward pass under a dispatch mode that watches
every aten operator reading a parameter's storage (the parameter or a view of it). A matrix product
with a parameter operand applies each element of that operand ``r = MACs / numel(operand)`` times;
a pointwise op or the fused bias add of ``addmm`` applies it ``r = numel(output) / numel(operand)``
times; an affine normalisation applies its gain and bias once per output element. The row count
``r`` is then matched, as an exact integer multiple, against the sizes of the graph: triplets, edges,
atoms, graphs (tried in that order). This catches multiplicities that a declaration per module would
miss: the per-degree weight :math:`W_l` of an SO(3) linear layer acts on the :math:`2l+1` components
of every atom (multiplicity :math:`2l+1` per node), the SO(2) weights of order :math:`m > 0` act on
the :math:`\pm m` pair of every edge (multiplicity 2 per edge), and a parameter used by two
differently sized products (GemNet-OC's circular-basis weight on the embedding edges and on the
quadruplet-graph edges) gets two entries. A tensor computed from parameters (and buffers) alone --
a weight re-laid out, sign-flipped, concatenated with another or with rows picked by a buffer index,
as the spherical family's SO(2) blocks build their real-form and per-side weights -- is followed as a
*derived* weight: applying it applies its parameters, each for its share of its elements.

**What the prediction ignores** (the difference to the counted κ of
:func:`~nnip_scaling.flops.estimate_kappa`): every FLOP that is not a parameter application --
activations and other pointwise ops on activations, normalisation statistics, scatter/index-add
aggregations, radial and angular bases, spherical harmonics and Wigner-D matrices and the rotations
into and out of the edge frame (matrix products without a parameter operand), the parameter-free
triplet/quadruplet aggregations of the directional family, and the per-graph energy sum.

The row counts of a model that pads (the directional family's dense per-atom layouts apply a few
parameters to padded neighbour slots) are what runs, padding included; they do not match a graph
size and land in ``"other"``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from nnip_scaling.flops import _rules
from nnip_scaling.flops.counter import _eager_stance, _strip_compile

__all__ = ["DOMAINS", "ParameterUse", "KappaPrediction", "parameter_placement", "predicted_kappa"]

#: Domains a parameter application can be matched to, in the order they are tried.
DOMAINS: tuple[str, ...] = ("triplet", "edge", "node", "graph")
#: Extra labels: ``"other"`` (row count matches no graph size), ``"free"`` (no arithmetic reads the
#: parameter: lookups only), ``"unused"`` (the forward pass never touches it).
OTHER, FREE, UNUSED = "other", "free", "unused"

# Matrix operands and fused-bias operand of the matmul-family ops (positional indices).
_MATRIX_ARGS: dict[str, tuple[tuple[int, ...], int | None]] = {
    "mm": ((0, 1), None),
    "bmm": ((0, 1), None),
    "mv": ((0, 1), None),
    "dot": ((0, 1), None),
    "vdot": ((0, 1), None),
    "addmm": ((1, 2), 0),
    "baddbmm": ((1, 2), 0),
    "addmv": ((1, 2), 0),
    "addr": ((1, 2), 0),
    "addbmm": ((1, 2), 0),
    "_addmm_activation": ((1, 2), 0),
    "convolution": ((0, 1), 2),
    "_convolution": ((0, 1), 2),
}
# Affine normalisations: (gain, bias) argument positions; each is applied once per output element.
_AFFINE_NORMS: dict[str, tuple[int, ...]] = {
    "native_layer_norm": (2, 3),
    "native_group_norm": (1, 2),
    "native_batch_norm": (1, 2),
    "_native_batch_norm_legit": (1, 2),
    "_native_batch_norm_legit_no_training": (1, 2),
}


@dataclass(frozen=True)
class ParameterUse:
    r"""How one parameter tensor is applied (one entry per parameter, domain and cost).

    Attributes:
        name: qualified parameter name (``model.named_parameters()``).
        numel: elements of the parameter tensor.
        domain: ``"triplet"``, ``"edge"``, ``"node"``, ``"graph"``, ``"other"``, ``"free"`` (looked
            up, never in arithmetic: 0 FLOPs) or ``"unused"``.
        multiplicity: applications of each element per item of the domain, averaged over the
            tensor's elements (1 for a ``Linear`` weight; :math:`(l_{max}+1)` on average for an SO(3)
            linear weight, 2 for an SO(2) weight of order :math:`m > 0`); for ``"other"`` the
            applications per element **per atom** of the traced graph; 0 for free/unused.
        flops_per_application: 2 (a multiply-add in a matrix product) or 1 (a bias add, a gain).
        flops: FLOPs of these applications in the traced forward pass.
    """

    name: str
    numel: int
    domain: str
    multiplicity: float
    flops_per_application: int
    flops: int

    @property
    def weighted(self) -> float:
        r"""Contribution to :math:`P_\text{domain}`: ``numel * multiplicity * flops_per_application / 2``."""
        return self.numel * self.multiplicity * self.flops_per_application / 2.0


@dataclass(frozen=True)
class KappaPrediction:
    r"""κ predicted from parameter placement (see the module docstring for the formula).

    Attributes:
        kappa: :math:`\kappa_\text{pred} = 2(P_\text{node} + P_\text{edge}\bar k + P_\text{triplet}
            \bar t + P_\text{graph} G/D + P_\text{other}) / N`.
        n_params: trainable parameters :math:`N`.
        n_atoms, n_edges, n_graphs, n_triplets: sizes of the traced graph.
        mean_neighbors: :math:`\bar k` = ``n_edges / n_atoms``.
        triplets_per_atom: :math:`\bar t`.
        per_node, per_edge, per_triplet, per_graph: :math:`P_d`, multiplicity-weighted parameter
            counts (a bias or gain weighs 1/2).
        other_per_atom: :math:`P_\text{other}` (per atom of the traced graph).
        free: parameters only looked up (embeddings): in :math:`N`, 0 FLOPs.
        unused: parameters the forward pass never read.
        flops: predicted forward FLOPs on the traced graph,
            :math:`2 D (P_\text{node} + \dots)`.
        uses: one :class:`ParameterUse` per parameter, domain and cost.
        ambiguous: names of parameters with a row count that matched more than one graph size
            (the first domain in :data:`DOMAINS` order was taken; the FLOPs are unaffected, the
            breakdown and :meth:`kappa_at` are not reliable for them). Use a larger, less regular
            batch to settle them.
    """

    kappa: float
    n_params: int
    n_atoms: int
    n_edges: int
    n_graphs: int
    n_triplets: int
    mean_neighbors: float
    triplets_per_atom: float
    per_node: float
    per_edge: float
    per_triplet: float
    per_graph: float
    other_per_atom: float
    free: int
    unused: int
    flops: float
    uses: tuple[ParameterUse, ...] = field(default_factory=tuple)
    ambiguous: tuple[str, ...] = ()

    def kappa_at(
        self,
        *,
        mean_neighbors: float,
        triplets_per_atom: float | None = None,
        graphs_per_atom: float | None = None,
    ) -> float:
        r"""κ predicted for other graph statistics with the same placement.

        .. math:: \kappa = 2\big(P_\text{node} + P_\text{edge}\,\bar k' + P_\text{triplet}\,\bar t'
                  + P_\text{graph}\,g' + P_\text{other}\big)/N

        ``P_other`` is kept at its traced value (its dependence on the graph is not known).

        Args:
            mean_neighbors: :math:`\bar k'` (>= 0), e.g. the neighbour cap for dense data.
            triplets_per_atom: :math:`\bar t'`; required when parameters are applied per triplet.
            graphs_per_atom: :math:`g'`; default: that of the traced graph.

        Raises:
            ValueError: negative or non-finite statistics; ``triplets_per_atom`` missing while
                ``per_triplet > 0``.
        """
        k = _check_stat("mean_neighbors", mean_neighbors)
        if triplets_per_atom is None:
            if self.per_triplet > 0:
                raise ValueError("triplets_per_atom is required: this model applies parameters per triplet")
            t = 0.0
        else:
            t = _check_stat("triplets_per_atom", triplets_per_atom)
        g = self.n_graphs / self.n_atoms if graphs_per_atom is None else _check_stat("graphs_per_atom", graphs_per_atom)
        per_atom = self.per_node + self.per_edge * k + self.per_triplet * t + self.per_graph * g + self.other_per_atom
        return 2.0 * per_atom / self.n_params

    def table(self) -> str:
        """The breakdown as text: per domain, then per parameter (largest FLOPs first)."""
        lines = [
            f"predicted kappa = {self.kappa:.3f}  (N = {self.n_params:,}, {self.n_atoms} atoms, "
            f"{self.mean_neighbors:.2f} neighbours/atom, {self.triplets_per_atom:.1f} triplets/atom)",
            f"  P_node = {self.per_node:,.0f}   P_edge = {self.per_edge:,.0f}   P_triplet = "
            f"{self.per_triplet:,.0f}   P_graph = {self.per_graph:,.0f}   P_other/atom = "
            f"{self.other_per_atom:,.0f}   free = {self.free:,}   unused = {self.unused:,}",
        ]
        if self.ambiguous:
            lines.append(f"  ambiguous placement (row count matches several sizes): {', '.join(self.ambiguous)}")
        w = max([len("parameter")] + [len(u.name) for u in self.uses])
        lines.append(f"{'parameter':<{w}}  {'numel':>9}  {'domain':>7}  {'mult':>6}  {'F/app':>5}  {'FLOPs':>12}")
        for u in sorted(self.uses, key=lambda u: (-u.flops, u.name)):
            lines.append(f"{u.name:<{w}}  {u.numel:>9,}  {u.domain:>7}  {u.multiplicity:>6.3g}  "
                         f"{u.flops_per_application:>5}  {u.flops:>12,}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _check_stat(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return float(v)


# ----------------------------------------------------------------------------------------------
# tracing


def _distinct_numel(t: torch.Tensor) -> int:
    """Elements of the storage a (possibly broadcast) view reads: sizes along non-zero strides."""
    return math.prod(s for s, st in zip(t.shape, t.stride()) if st != 0 or s == 1)


def _storage_key(t: torch.Tensor) -> int | None:
    try:
        ptr = t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # pragma: no cover - storage-less tensor subclasses
        return None
    return ptr or None


def _tensors(x: Any) -> Iterable[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (tuple, list)):
        for y in x:
            if isinstance(y, torch.Tensor):
                yield y


class _Trace:
    """Mutable accumulator of one trace (never escapes :func:`parameter_placement`).

    ``sources`` maps a storage to its *composition*: ``{parameter name: share}`` with shares summing
    to 1. A parameter is its own source; a tensor computed from parameters and constants only (a
    weight re-laid out, sign-flipped, concatenated with another, rows selected by a buffer index:
    see :meth:`derive`) is a *derived* source, and an application of it is an application of its
    parameters, each for its share of the elements.
    """

    def __init__(self, storages: dict[int, str], constants: set[int]) -> None:
        self.sources: dict[int, dict[str, Fraction]] = {k: {n: Fraction(1)} for k, n in storages.items()}
        self.constants = constants  # storages of buffers: inputs that keep a result parameter-derived
        self.keep: list[torch.Tensor] = []  # derived tensors stay alive: their storages are never reused
        # (name, flops_per_application, rows) -> FLOPs
        self.flops: defaultdict[tuple[str, int, Fraction], Fraction] = defaultdict(Fraction)
        self.seen: set[str] = set()

    def source_of(self, t: Any) -> dict[str, Fraction] | None:
        if not isinstance(t, torch.Tensor):
            return None
        key = _storage_key(t)
        return None if key is None else self.sources.get(key)

    def add(self, source: dict[str, Fraction], operand: torch.Tensor, fpa: int, flops: Fraction) -> None:
        """``flops`` applying ``operand`` (``fpa`` FLOPs per application): each of its elements is
        applied ``rows`` times; each parameter of the source gets its share of the FLOPs."""
        if flops <= 0:
            return
        n = _distinct_numel(operand)
        if n == 0:
            return
        rows = flops / (fpa * n)
        for name, share in source.items():
            self.flops[(name, fpa, rows)] += flops * share

    def derive(self, inputs: list[tuple[torch.Tensor, dict[str, Fraction]]], out: Any) -> None:
        """Record ``out`` (computed from parameter-derived ``inputs`` and constants only) as derived:
        its composition is the inputs' compositions weighted by their element counts (exact for a
        concatenation, a copy or a sign flip)."""
        total = sum(_distinct_numel(t) for t, _ in inputs)
        comp: defaultdict[str, Fraction] = defaultdict(Fraction)
        for t, source in inputs:
            w = Fraction(_distinct_numel(t), total) if total else Fraction(1, len(inputs))
            for name, share in source.items():
                comp[name] += w * share
        for o in _tensors(out):
            key = _storage_key(o)
            if key is not None and o.is_floating_point() and key not in self.sources:
                self.sources[key] = dict(comp)
                self.keep.append(o)


class _PlacementMode(TorchDispatchMode):
    def __init__(self, trace: _Trace) -> None:
        super().__init__()
        self.trace = trace

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs if kwargs else {}
        if not isinstance(func, torch._ops.OpOverload):
            return NotImplemented
        kind, _, rule = _rules.classify(func)
        if kind == _rules.COMPOSITE:
            with self:
                r = func.decompose(*args, **kwargs)
            if r is not NotImplemented:
                return r
        out = func(*args, **kwargs)
        tr = self.trace
        params, others = [], 0
        for i, a in enumerate(list(args) + list(kwargs.values())):
            for t in _tensors(a):
                source = tr.source_of(t)
                if source is not None:
                    params.append((i if i < len(args) else -1, t, source))
                elif _storage_key(t) not in tr.constants:
                    others += 1
        if not params:
            return out
        for _, _, source in params:
            tr.seen.update(source)
        if not others:  # parameters (and constants) only: a derived weight, not an application
            tr.derive([(t, source) for _, t, source in params], out)
            return out
        self._record(func, kind, rule, args, kwargs, out, params)
        return out

    def _record(self, func, kind, rule, args, kwargs, out, params) -> None:
        """Add the FLOPs of an op applying parameters (or derived tensors) to activations."""
        tr = self.trace
        name_ = func.overloadpacket.__name__
        if kind == _rules.MATMUL and rule is not None:
            mm, other = rule(func, args, kwargs, out)
            matrices, bias = _MATRIX_ARGS.get(name_, (tuple(range(len(args))), None))
            operands = [(t, n) for i, t, n in params if i in matrices]
            for t, n in operands:
                tr.add(n, t, 2, Fraction(mm, len(operands)))
            for t, n in ((t, n) for i, t, n in params if bias is not None and i == bias):
                tr.add(n, t, 1, Fraction(other))
        elif name_ in _AFFINE_NORMS:
            o = out[0] if isinstance(out, (tuple, list)) else out
            for i, t, n in params:
                if i in _AFFINE_NORMS[name_]:
                    tr.add(n, t, 1, Fraction(o.numel()))
        elif kind in (_rules.POINTWISE, _rules.REDUCTION, _rules.SPECIAL) and rule is not None:
            _, other = rule(func, args, kwargs, out)
            for _, t, n in params:
                tr.add(n, t, 1, Fraction(other, len(params)))
        # zero-cost ops (views, gathers, lookups, copies) read the parameter without arithmetic:
        # nothing to add (a parameter seen only there is "free").


def _n_triplets(edge_index: torch.Tensor, n_atoms: int) -> int:
    """Triplets ``k -> v <- u`` with ``k != u``: :math:`\\sum_v d_v (d_v - 1)` (in-degrees)."""
    if edge_index.numel() == 0:
        return 0
    deg = torch.bincount(edge_index[1], minlength=n_atoms).to(torch.int64)
    return int((deg * (deg - 1)).sum())


def _classify(rows: Fraction, sizes: dict[str, int]) -> tuple[str, bool]:
    """``(domain, ambiguous)`` of one row count: the first domain in :data:`DOMAINS` whose size
    divides ``rows`` exactly, else ``"other"``."""
    hits = [d for d in DOMAINS if sizes[d] > 0 and rows.denominator == 1 and rows.numerator % sizes[d] == 0]
    if not hits:
        return OTHER, False
    return hits[0], len(hits) > 1


def parameter_placement(model: nn.Module, graph: Any) -> KappaPrediction:
    r"""Trace one forward pass of ``model(graph)`` and place every trainable parameter.

    ``graph`` is used as :func:`~nnip_scaling.flops.estimate_kappa` uses it: converted to the
    model's dtype/device, and given edges of the model's ``config.cutoff``/``max_neighbors`` when it
    has none (built before the trace). The model runs once, unchanged (outputs are discarded); a
    ``torch.compile``'d model runs eagerly through the module it wraps, as in
    :func:`~nnip_scaling.flops.count_flops`. A model without ``config`` that builds its own edges
    from an edge-less graph has its per-edge applications placed in ``"other"`` (the traced graph
    has no edges to match them against): pass a graph with edges.

    Args:
        model: an ``nn.Module`` taking an :class:`~nnip_scaling.graph.AtomicGraph`.
        graph: an :class:`~nnip_scaling.graph.AtomicGraph` (one batch, >= 1 atom).

    Returns:
        A :class:`KappaPrediction` (``.kappa``, the per-domain counts, ``.uses`` per parameter).

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or ``graph`` not an ``AtomicGraph``.
        ValueError: no trainable parameters; a graph without atoms; parameters sharing storage
            (tied weights cannot be told apart by storage).

    Shapes:
        graph with ``n_atoms`` atoms and (after edge building) ``E`` edges; the result does not
        depend on values, only on the shapes that flow through the model.
    """
    from nnip_scaling.flops.kappa import _prepare
    from nnip_scaling.graph import AtomicGraph

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(graph, AtomicGraph):
        raise TypeError(f"graph must be an AtomicGraph, got {type(graph).__name__}")
    if graph.n_atoms == 0:
        raise ValueError("graph has no atoms")
    model = _strip_compile(model)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (N = 0)")
    storages: dict[int, str] = {}
    for n, p in params:
        key = _storage_key(p)
        if key is None:
            raise ValueError(f"parameter {n!r} has no storage (meta device?); build the model on a real device")
        if key in storages:
            raise ValueError(f"parameters {storages[key]!r} and {n!r} share storage; placement needs distinct tensors")
        storages[key] = n
    constants = {k for b in model.buffers() if (k := _storage_key(b)) is not None}
    g = _prepare(graph, model, {})
    trace = _Trace(storages, constants)
    with _eager_stance(), _PlacementMode(trace):
        model(g)
    n_atoms = int(g.n_atoms)
    n_edges = 0 if g.edge_index is None else int(g.edge_index.shape[1])
    n_trip = 0 if g.edge_index is None else _n_triplets(g.edge_index, n_atoms)
    sizes = {"triplet": n_trip, "edge": n_edges, "node": n_atoms, "graph": int(g.n_graphs)}
    return _assemble(params, trace, sizes)


def _assemble(params: list[tuple[str, torch.Tensor]], trace: _Trace, sizes: dict[str, int]) -> KappaPrediction:
    numel = {n: p.numel() for n, p in params}
    # (name, domain, fpa) -> [applications per element per item (Fraction), flops]
    acc: dict[tuple[str, str, int], list[Fraction]] = {}
    ambiguous: list[str] = []
    for (name, fpa, rows), flops in trace.flops.items():
        domain, amb = _classify(rows, sizes)
        if amb and name not in ambiguous:
            ambiguous.append(name)
        # the operand may be a slice of the parameter: express per element of the whole tensor
        share = flops / (fpa * numel[name])  # applications per element of the whole tensor
        per_item = share / (sizes[domain] if domain != OTHER else sizes["node"])
        key = (name, domain, fpa)
        if key not in acc:
            acc[key] = [Fraction(0), Fraction(0)]
        acc[key][0] += per_item
        acc[key][1] += flops
    uses: list[ParameterUse] = []
    touched = set()
    for (name, domain, fpa), (mult, flops) in acc.items():
        touched.add(name)
        uses.append(ParameterUse(name, numel[name], domain, float(mult), fpa, int(round(flops))))
    free = unused = 0
    for name, _ in params:
        if name in touched:
            continue
        if name in trace.seen:
            uses.append(ParameterUse(name, numel[name], FREE, 0.0, 0, 0))
            free += numel[name]
        else:
            uses.append(ParameterUse(name, numel[name], UNUSED, 0.0, 0, 0))
            unused += numel[name]
    per = {d: sum(u.weighted for u in uses if u.domain == d) for d in (*DOMAINS, OTHER)}
    n_atoms = sizes["node"]
    n_params = sum(numel.values())
    k = sizes["edge"] / n_atoms
    t = sizes["triplet"] / n_atoms
    g = sizes["graph"] / n_atoms
    per_atom = per["node"] + per["edge"] * k + per["triplet"] * t + per["graph"] * g + per[OTHER]
    order = {n: i for i, (n, _) in enumerate(params)}
    dorder = {d: i for i, d in enumerate((*DOMAINS, OTHER, FREE, UNUSED))}
    uses.sort(key=lambda u: (order[u.name], dorder[u.domain], -u.flops_per_application))
    return KappaPrediction(
        kappa=2.0 * per_atom / n_params,
        n_params=n_params,
        n_atoms=n_atoms,
        n_edges=sizes["edge"],
        n_graphs=sizes["graph"],
        n_triplets=sizes["triplet"],
        mean_neighbors=k,
        triplets_per_atom=t,
        per_node=per["node"],
        per_edge=per["edge"],
        per_triplet=per["triplet"],
        per_graph=per["graph"],
        other_per_atom=per[OTHER],
        free=free,
        unused=unused,
        flops=2.0 * per_atom * n_atoms,
        uses=tuple(uses),
        ambiguous=tuple(ambiguous),
    )


def predicted_kappa(model: nn.Module, graph: Any) -> float:
    r"""κ predicted from where the parameters sit (analytic cross-check of the counted κ).

    .. math:: \kappa_\text{pred} = \frac{2}{N}\Big(P_\text{node} + P_\text{edge}\,\bar k
              + P_\text{triplet}\,\bar t + P_\text{graph}\,\frac{G}{D} + P_\text{other}\Big)

    Shorthand for ``parameter_placement(model, graph).kappa``; see :func:`parameter_placement` and
    the module docstring for how parameters are placed and what the prediction ignores.

    Args:
        model: an ``nn.Module`` taking an ``AtomicGraph``.
        graph: one batch (edges built from ``model.config`` when missing).

    Shapes:
        graph: any number of atoms >= 1.
    """
    return parameter_placement(model, graph).kappa
