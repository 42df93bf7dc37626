r"""Estimate the compute constant :math:`\kappa` of an architecture (paper section 4.1, figure 2).

.. math::

    C \approx 3\,\kappa\,N\,D \quad\text{(eq. 3)},\qquad
    \kappa = \frac{C_\text{fwd}}{N\,D},

with :math:`C_\text{fwd}` the FLOPs of one forward pass over :math:`D` atoms (the "tokens" of an
interatomic potential) and :math:`N` the number of trainable parameters. The forward pass is
counted by :func:`~nnip_scaling.flops.count_flops` (conventions in docs/flops.md); neighbour-list
construction is excluded by building edges before counting.

:math:`\kappa` is a constant only if every FLOP scales with :math:`N`. Parts of a model that do not
grow with width (radial bases, spherical harmonics, per-edge geometry, embeddings) make small
models look more expensive per parameter, so :math:`\kappa` drifts with :math:`N`; the per-size
table (:attr:`KappaEstimate.per_size`) is then the honest answer, and a warning is issued.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

from nnip_scaling.flops.counter import UncountedOpsWarning, count_quietly, uncounted_message

__all__ = ["KappaEstimate", "KappaPoint", "KappaRow", "KappaDriftWarning", "PAPER_KAPPA", "PROBE_SOURCES",
           "estimate_kappa", "probe_graphs"]

DEFAULT_BATCH_SIZES: tuple[int, ...] = (8, 32, 90)

#: Probe sources of :func:`probe_graphs` -> their default batch sizes (molecules per batch).
PROBE_SOURCES: Mapping[str, tuple[int, ...]] = MappingProxyType({"g2": DEFAULT_BATCH_SIZES, "gfn2": (4, 12, 32)})

#: κ reported by the paper (section 4.1, figure 2) for its four architectures, keyed by our kind.
PAPER_KAPPA: Mapping[str, float] = MappingProxyType(
    {"unconstrained": 2.33, "directional": 35.18, "cartesian": 28.09, "spherical": 74.36}
)


class KappaDriftWarning(UserWarning):
    """κ changes with model size by more than the tolerance: quote the per-size table."""


@dataclass(frozen=True)
class KappaPoint:
    """One counted forward pass.

    Attributes:
        width: the width passed to the factory (``None`` for a single model).
        n_params: trainable parameters :math:`N`.
        n_atoms: atoms in the batch :math:`D`.
        n_edges: directed edges in the batch (0 if the graph carried none).
        flops: forward FLOPs :math:`C_\\text{fwd}`.
    """

    width: int | None
    n_params: int
    n_atoms: int
    n_edges: int
    flops: int


@dataclass(frozen=True)
class KappaRow:
    """κ of one model size.

    Attributes:
        width: the width (``None`` for a single model).
        n_params: trainable parameters :math:`N`.
        flops_per_atom: least-squares slope of :math:`C_\\text{fwd}` against :math:`D` through
            the origin over the probe batches.
        kappa: ``flops_per_atom / n_params``.
    """

    width: int | None
    n_params: int
    flops_per_atom: float
    kappa: float


@dataclass(frozen=True)
class KappaEstimate:
    r"""Result of :func:`estimate_kappa`.

    Attributes:
        kappa: least-squares fit of :math:`C = \kappa N D` through the origin over every counted
            pass (all sizes, all batches).
        kappa_intercept_fit: ``(slope, intercept)`` of :math:`C = \text{slope}\cdot N D +
            \text{intercept}`; ``None`` when fewer than two distinct :math:`N D` values were
            counted (one batch of one model: a line through one point is not determined).
        per_size: one :class:`KappaRow` per model size, in the order given.
        loglog_slope: slope of :math:`\log(C/D)` against :math:`\log N` across sizes (1 when
            :math:`\kappa` is constant; below 1 when fixed per-atom costs are amortised at larger
            width); ``None`` with a single size.
        mean_neighbors: directed edges per atom over the probe batches (``None`` when the graphs
            carried no edges, i.e. the model builds its own and that cost is counted).
        r_squared: coefficient of determination of the through-origin fit.
        drift: relative spread of the per-size κ, ``max/min - 1`` (0 for a single size).
        warning: a message when ``drift`` exceeds the tolerance, else ``None``.
        points: every counted pass (:class:`KappaPoint`), for plotting :math:`C` against
            :math:`N D` (paper figure 2).
        uncounted: ops without a FLOP rule seen while counting (name -> calls over all passes);
            non-empty means κ is a lower bound (and :class:`~nnip_scaling.flops.UncountedOpsWarning`
            was issued).
        adapter: name of the adapter that fed the model (``None``: the model takes our graphs).
        cutoff: radius (Å) of the probe edges built before counting (``None``: none built).
    """

    kappa: float
    kappa_intercept_fit: tuple[float, float] | None
    per_size: tuple[KappaRow, ...]
    loglog_slope: float | None
    mean_neighbors: float | None
    r_squared: float
    drift: float
    warning: str | None
    points: tuple[KappaPoint, ...]
    uncounted: Mapping[str, int] = field(default_factory=dict)
    adapter: str | None = None
    cutoff: float | None = None

    def table(self) -> str:
        """The per-size table as text (width, N, FLOPs per atom, κ = FLOPs per parameter per atom)."""
        lines = [f"{'width':>7}  {'N':>12}  {'FLOPs/atom':>14}  {'kappa':>8}"]
        for r in self.per_size:
            w = "-" if r.width is None else str(r.width)
            lines.append(f"{w:>7}  {r.n_params:>12,}  {r.flops_per_atom:>14,.0f}  {r.kappa:>8.3f}")
        if self.kappa_intercept_fit is None:
            lines.append(f"kappa (fit through origin) = {self.kappa:.3f} FLOPs per parameter per atom; "
                         "no fit with intercept (one N*D value counted: pass several batches)")
        else:
            slope, icpt = self.kappa_intercept_fit
            lines.append(f"kappa (fit through origin) = {self.kappa:.3f} FLOPs per parameter per atom; "
                         f"with intercept: slope {slope:.3f}, intercept {icpt:,.0f} FLOPs")
        if self.loglog_slope is not None:
            lines.append(f"log-log slope of C/D vs N = {self.loglog_slope:.3f}")
        if self.mean_neighbors is not None:
            lines.append(f"mean neighbours per atom = {self.mean_neighbors:.2f}")
        if self.warning:
            lines.append(f"warning: {self.warning}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


# ----------------------------------------------------------------------------------------------
# probe batches


def probe_graphs(
    batch_sizes: Sequence[int] | None = None,
    *,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    source: str = "g2",
) -> list[Any]:
    """Nested batches of built-in molecules, without edges.

    Batch ``i`` holds the first ``batch_sizes[i]`` molecules of one fixed permutation of the
    source's molecules (drawn with ``numpy.random.default_rng(seed)``), so the batches are nested.

    Sources (:data:`PROBE_SOURCES`):

    * ``"g2"``: the 90 built-in G2 molecules
      (:func:`~nnip_scaling.data.molecules.builtin_molecules`; 3-14 atoms, about 7 neighbours per
      atom at 6 Å). Default batches ``(8, 32, 90)`` molecules (about 60, 220, 640 atoms).
    * ``"gfn2"``: one configuration of each of the 2,500 molecules of the shipped GFN2-xTB data set
      (``nnip_scaling.data.load_dataset("builtin")``; 2-30 atoms, 21 on average, about 17
      neighbours per atom at 6 Å / 30, 21 at 10 Å / 50): closer to the paper's OMol25 molecules.
      Default batches ``(4, 12, 32)`` molecules (about 90, 260, 690 atoms).

    Args:
        batch_sizes: molecules per batch, each in 1..(molecules of the source); ``None`` for the
            source's default.
        seed: seed of the permutation.
        dtype, device: of the positions.
        source: ``"g2"`` or ``"gfn2"``.

    Returns:
        A list of :class:`~nnip_scaling.graph.AtomicGraph` without edges.

    Raises:
        ValueError: unknown ``source``, bad ``batch_sizes``.
        TypeError: ``seed`` not an int.
        FileNotFoundError: ``source="gfn2"`` and the data set is not installed.
    """
    from nnip_scaling.graph import AtomicGraph

    if source not in PROBE_SOURCES:
        raise ValueError(f"source must be one of {list(PROBE_SOURCES)}, got {source!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    mols = _probe_molecules(source)
    sizes = _check_batch_sizes(PROBE_SOURCES[source] if batch_sizes is None else batch_sizes, len(mols))
    perm = np.random.default_rng(seed).permutation(len(mols))
    return [
        AtomicGraph.from_molecules([mols[i] for i in perm[:k]], dtype=dtype, device=device)
        for k in sizes
    ]


def _probe_molecules(source: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(Z, R)`` of every molecule of a probe source (see :func:`probe_graphs`)."""
    if source == "g2":
        from nnip_scaling.data.molecules import builtin_molecules

        return [m.as_tuple() for m in builtin_molecules()]
    from nnip_scaling.data import load_dataset

    ds = load_dataset("builtin")
    _, first = np.unique(ds.molecule_id, return_index=True)  # first configuration of each molecule
    out = []
    for i in np.sort(first):
        c = ds[int(i)]
        out.append((c.atomic_numbers, c.positions))
    return out


def _check_batch_sizes(batch_sizes: Any, n_max: int) -> tuple[int, ...]:
    if isinstance(batch_sizes, (str, bytes)) or not isinstance(batch_sizes, Sequence):
        raise TypeError(f"batch_sizes must be a sequence of ints, got {type(batch_sizes).__name__}")
    if len(batch_sizes) == 0:
        raise ValueError("batch_sizes must not be empty")
    out = []
    for k in batch_sizes:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= n_max:
            raise ValueError(f"batch_sizes: each entry must be an int in 1..{n_max} (molecules), "
                             f"got {k!r}")
        out.append(int(k))
    return tuple(out)


# ----------------------------------------------------------------------------------------------
# fits (pure)


def _fit_origin(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y = a·x``: ``Σxy / Σx²``."""
    return float(np.dot(x, y) / np.dot(x, x))


def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    if np.unique(x).size < 2:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def _r_squared_origin(x: np.ndarray, y: np.ndarray, a: float) -> float:
    ss_res = float(np.sum((y - a * x) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


# ----------------------------------------------------------------------------------------------
# counting


def _n_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _float_param(model: nn.Module) -> torch.Tensor | None:
    for p in model.parameters():
        if p.is_floating_point():
            return p
    return None


def _edge_settings(model: nn.Module, adapter: Any, cutoff: float | None,
                   max_neighbors: int | None) -> tuple[float, int | None] | None:
    """``(cutoff, max_neighbors)`` of the probe edges: the caller's ``cutoff``, else the adapter's
    (the model's own), else ``model.config`` when it has both fields; ``None``: no edges built."""
    if cutoff is not None:
        return float(cutoff), max_neighbors
    if adapter is not None:
        own = adapter.cutoff(model)
        return None if own is None else (float(own), adapter.max_neighbors(model))
    cfg = getattr(model, "config", None)
    if cfg is None:
        return None
    own = getattr(cfg, "cutoff", None)
    if own is None or not hasattr(cfg, "max_neighbors"):
        return None
    return float(own), cfg.max_neighbors


_FROM_CONFIG: Any = object()  # edge settings read from ``model.config``


def _prepare(graph: Any, model: nn.Module, cache: dict, settings: Any = _FROM_CONFIG) -> Any:
    """Graph in the model's dtype/device, with edges at ``settings = (cutoff, max_neighbors)``
    (default: from the model's config) unless it has some (built here, outside the count)."""
    p = _float_param(model)
    if p is not None and (graph.dtype != p.dtype or graph.device != p.device):
        graph = graph.to(device=p.device, dtype=p.dtype)
    if settings is _FROM_CONFIG:
        settings = _edge_settings(model, None, None, None)
    if settings is None or graph.edge_index is not None:
        return graph
    key = (id(graph), settings, graph.dtype, graph.device)
    if key not in cache:
        cache[key] = (graph, graph.with_edges(settings[0], max_neighbors=settings[1]))
    return cache[key][1]


def _call(model: nn.Module, adapter: Any) -> Callable[[Any], Any]:
    """``inputs -> output``: the counted call (the adapter's forward, or ``model(graph)``)."""
    if adapter is None:
        return model
    return lambda inputs: adapter.forward(model, inputs)


def _warm_up(model: nn.Module, adapter: Any, inputs: Any, settings: Any) -> None:
    """One uncounted pass; errors that mean "wrong input" are turned into what to do."""
    from nnip_scaling.nn._edges import MissingEdgesError

    try:
        _call(model, adapter)(inputs)
    except MissingEdgesError as err:
        if settings is not None:
            raise
        raise MissingEdgesError(
            f"estimate_kappa: {type(model).__name__} needs edges, and it has no config with a cutoff to "
            "build them at: pass estimate_kappa(model, cutoff=..., max_neighbors=...) (the model's "
            f"own cutoff, in Å), or graphs= that carry edges ({err})") from err
    except (TypeError, AttributeError, KeyError, IndexError) as err:
        if adapter is not None or type(model).__module__.split(".")[0] == "nnip_scaling":
            raise
        from nnip_scaling.flops.adapters import ADAPTERS

        raise TypeError(
            f"estimate_kappa: calling {type(model).__name__} on an AtomicGraph failed ({type(err).__name__}: "
            f"{err}). For a model of another package pass adapter= (one of {sorted(ADAPTERS)}, or "
            "CallableAdapter(graph -> model inputs, cutoff=...), see nnip_scaling.flops.adapters)") from err


def _count_points(model: nn.Module, graphs: Sequence[Any], width: int | None, cache: dict,
                  uncounted: dict[str, list[int]], adapter: Any = None,
                  settings: Any = _FROM_CONFIG) -> list[KappaPoint]:
    n = _n_trainable(model)
    if n == 0:
        raise ValueError(f"the model{'' if width is None else f' of width {width}'} has no "
                         "trainable parameters (N = 0)")
    if settings is _FROM_CONFIG:
        settings = _edge_settings(model, adapter, None, None)
    prepared = [_prepare(g, model, cache, settings) for g in graphs]
    inputs = prepared if adapter is None else [adapter.inputs(model, g) for g in prepared]
    # One uncounted warm-up pass on the smallest batch: work done once per process and cached
    # (e.g. the Wigner-D constants of the spherical family, computed on first use) is not part of
    # the steady-state forward pass, and counting it would make κ depend on what ran before.
    smallest = min(range(len(prepared)), key=lambda i: prepared[i].n_atoms)
    _warm_up(model, adapter, inputs[smallest], settings)
    pts = []
    for g, x in zip(prepared, inputs):
        rep = count_quietly(_call(model, adapter), (x,), {})
        for k, v in rep.uncounted.items():
            calls, elements = uncounted.setdefault(k, [0, 0])
            uncounted[k] = [calls + v, elements + rep.uncounted_elements.get(k, 0)]
        n_edges = 0 if g.edge_index is None else int(g.edge_index.shape[1])
        pts.append(KappaPoint(width, n, int(g.n_atoms), n_edges, int(rep.total)))
    return pts


def _resolve_adapter(adapter: Any, model: nn.Module, cutoff: float | None, max_neighbors: int | None) -> Any:
    from nnip_scaling.flops.adapters import Adapter, CallableAdapter, find_adapter, get_adapter

    if adapter is None:
        return find_adapter(model)
    if isinstance(adapter, Adapter):
        return adapter
    if isinstance(adapter, str):
        return get_adapter(adapter)
    if callable(adapter):
        return CallableAdapter(adapter, cutoff=cutoff, max_neighbors=max_neighbors)
    raise TypeError(f"adapter must be None, an adapter name, an Adapter or a callable graph -> inputs, "
                    f"got {type(adapter).__name__}")


def _as_graph_list(graphs: Any) -> list[Any]:
    from nnip_scaling.graph import AtomicGraph

    if isinstance(graphs, AtomicGraph):
        graphs = [graphs]
    if isinstance(graphs, (str, bytes)) or not isinstance(graphs, Sequence) or len(graphs) == 0:
        raise TypeError("graphs must be an AtomicGraph or a non-empty sequence of AtomicGraph")
    for i, g in enumerate(graphs):
        if not isinstance(g, AtomicGraph):
            raise TypeError(f"graphs[{i}] must be an AtomicGraph, got {type(g).__name__}")
        if g.n_atoms == 0:
            raise ValueError(f"graphs[{i}] has no atoms")
    return list(graphs)


def estimate_kappa(
    model_or_factory: nn.Module | Callable[[int], nn.Module],
    graphs: Any = None,
    *,
    widths: Sequence[int] | None = None,
    batch_sizes: Sequence[int] | None = None,
    seed: int = 0,
    drift_tolerance: float = 0.2,
    probe: str = "g2",
    cutoff: float | None = None,
    max_neighbors: int | None = None,
    adapter: Any = None,
) -> KappaEstimate:
    r"""Measure :math:`\kappa = C_\text{fwd} / (N D)` (paper eq. 3, figure 2).

    With a model, its forward pass is counted on several batches (``D`` = atoms per batch) and
    :math:`C = \kappa N D` is fitted through the origin. With a factory ``width -> model`` and
    ``widths``, every width is measured on the same batches, and the fit runs over all sizes, as
    in the paper's figure 2; :attr:`KappaEstimate.per_size` holds κ per size.

    The probe batches, unless ``graphs`` are given, are nested subsets of the 90 built-in
    molecules (:func:`probe_graphs`; ``batch_sizes`` molecules each). Edges are built before
    counting, so neighbour-list construction is excluded, at the first of: the ``cutoff`` passed
    here; the model's own cutoff read by its adapter; ``model.config`` (every
    :class:`~nnip_scaling.models.Potential`). Without any of these the graphs carry no edges: a
    model that builds its own has that counted, and a model that needs them (a custom module of
    our blocks) raises an error asking for ``cutoff=``. Graphs that already carry edges are used
    as given. Graphs are converted to the model's dtype and device.

    Models of other packages (mace-torch, fairchem-core, SchNetPack, PyTorch Geometric) are fed
    through an adapter (:mod:`nnip_scaling.flops.adapters`), found from the model's package or
    named with ``adapter=``; it builds the model's input from each graph outside the count, so
    κ counts the model's forward pass only.

    Each model first runs once, uncounted, on the smallest batch, so that one-time work cached on
    first use (constant matrices) is not counted.

    What is counted is the model's forward call in its current mode (train/eval): a model with
    conservative forces includes the force computation (an ``autograd.grad``) in
    :math:`C_\text{fwd}`. The paper's models predict forces directly.

    Args:
        model_or_factory: an ``nn.Module`` taking an ``AtomicGraph``, or (with ``widths``) a
            callable ``width -> nn.Module``.
        graphs: an ``AtomicGraph`` or a sequence of them (batches); default: probe batches.
        widths: widths to build with the factory (distinct ints >= 1).
        batch_sizes: molecules per probe batch (default: the probe source's, ``(8, 32, 90)`` for
            ``"g2"``); only without ``graphs``.
        seed: seed of the probe-batch permutation.
        drift_tolerance: relative spread of per-size κ (``max/min - 1``) above which a
            :class:`KappaDriftWarning` is issued and recorded in ``warning``.
        probe: source of the probe batches, ``"g2"`` (90 small G2 molecules) or ``"gfn2"`` (the
            shipped GFN2-xTB set, molecules up to 30 atoms, closer to the paper's data); see
            :func:`probe_graphs`. Only without ``graphs``.
        cutoff: radius (Å) of the probe edges, for a model without a config (or to override
            its own); ``None``: the model's.
        max_neighbors: neighbour cap of those edges (``None``: none); only with ``cutoff``.
        adapter: ``None`` (find one from the model's package, or none for our models), an
            adapter name (``"mace"``, ``"fairchem"``, ``"schnetpack"``, ``"pyg"``), an
            :class:`~nnip_scaling.flops.adapters.Adapter`, or a callable ``graph -> model
            inputs`` (a :class:`~nnip_scaling.flops.adapters.CallableAdapter` at ``cutoff``).

    Returns:
        A :class:`KappaEstimate`.

    Raises:
        TypeError: a factory without ``widths``, a module with ``widths``, a factory returning a
            non-module, graphs that are not ``AtomicGraph``.
        ValueError: empty/invalid ``widths`` or ``batch_sizes``, both ``graphs`` and
            ``batch_sizes``, a model with no trainable parameters, ``drift_tolerance <= 0``, a bad
            ``cutoff``/``max_neighbors``.
        MissingEdgesError: (a ``ValueError``) the model needs edges and no cutoff is known.
        ImportError: the adapter's package is not installed (the message names it).

    Shapes:
        graphs: any number of atoms; only ``n_atoms`` and the FLOPs enter the fit.
    """
    if isinstance(drift_tolerance, bool) or not isinstance(drift_tolerance, (int, float)) \
            or not drift_tolerance > 0:
        raise ValueError(f"drift_tolerance must be a positive number, got {drift_tolerance!r}")
    sizes = _sizes(model_or_factory, widths)
    if graphs is not None and batch_sizes is not None:
        raise ValueError("pass either graphs or batch_sizes, not both")
    _check_edge_arguments(cutoff, max_neighbors)
    if probe not in PROBE_SOURCES:
        raise ValueError(f"probe must be one of {list(PROBE_SOURCES)}, got {probe!r}")

    cache: dict = {}
    uncounted: dict[str, list[int]] = {}
    points: list[KappaPoint] = []
    used: tuple[str | None, float | None] = (None, None)
    batches: list[Any] | None = _as_graph_list(graphs) if graphs is not None else None
    for width, make in sizes:
        model = make()
        if not isinstance(model, nn.Module):
            raise TypeError(f"the factory returned {type(model).__name__} for width {width}, "
                            "expected an nn.Module")
        if batches is None:
            p = _float_param(model)
            batches = probe_graphs(batch_sizes, source=probe, seed=seed,
                                   dtype=None if p is None else p.dtype,
                                   device=None if p is None else p.device)
        fed_by = _resolve_adapter(adapter, model, cutoff, max_neighbors)
        settings = _edge_settings(model, fed_by, cutoff, max_neighbors)
        points.extend(_count_points(model, batches, width, cache, uncounted, fed_by, settings))
        used = (None if fed_by is None else fed_by.name, None if settings is None else settings[0])
        del model
    _warn_uncounted(uncounted, sum(p.flops for p in points))
    est = _summarise(points, {k: v[0] for k, v in uncounted.items()}, float(drift_tolerance))
    return dataclasses.replace(est, adapter=used[0], cutoff=used[1])


def _sizes(model_or_factory: Any, widths: Any) -> list[tuple[int | None, Callable[[], nn.Module]]]:
    """``(width, build)`` per model size: the model itself, or the factory at each width."""
    if widths is None:
        if not isinstance(model_or_factory, nn.Module):
            raise TypeError("estimate_kappa: pass an nn.Module, or a factory width -> model "
                            f"together with widths=[...]; got {type(model_or_factory).__name__} "
                            "without widths")
        return [(None, lambda: model_or_factory)]
    if isinstance(model_or_factory, nn.Module) or not callable(model_or_factory):
        raise TypeError("widths=... needs a factory (a callable width -> nn.Module), got "
                        f"{type(model_or_factory).__name__}")
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) == 0:
        raise ValueError("widths must be a non-empty sequence of ints")
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1:
            raise ValueError(f"widths: each entry must be an int >= 1, got {w!r}")
    if len(set(int(w) for w in widths)) != len(widths):
        raise ValueError(f"widths must be distinct, got {list(widths)}")
    return [(int(w), (lambda w=int(w): model_or_factory(w))) for w in widths]


def _warn_uncounted(uncounted: dict[str, list[int]], total: int) -> None:
    """One :class:`UncountedOpsWarning` for all passes (op -> ``[calls, output elements]``)."""
    if not uncounted:
        return
    calls = {k: v[0] for k, v in sorted(uncounted.items())}
    elements = {k: v[1] for k, v in sorted(uncounted.items())}
    warnings.warn("estimate_kappa: " + uncounted_message(calls, elements, total), UncountedOpsWarning,
                  stacklevel=3)


def _check_edge_arguments(cutoff: Any, max_neighbors: Any) -> None:
    if cutoff is not None and (isinstance(cutoff, bool) or not isinstance(cutoff, (int, float))
                               or not math.isfinite(cutoff) or cutoff <= 0):
        raise ValueError(f"cutoff must be a positive number of Å, got {cutoff!r}")
    if max_neighbors is not None:
        if cutoff is None:
            raise ValueError("max_neighbors is the cap of the probe edges built at cutoff=: pass cutoff too")
        if isinstance(max_neighbors, bool) or not isinstance(max_neighbors, int) or max_neighbors < 1:
            raise ValueError(f"max_neighbors must be an int >= 1 or None, got {max_neighbors!r}")


def _summarise(points: list[KappaPoint], uncounted: dict[str, int], tol: float) -> KappaEstimate:
    c = np.array([p.flops for p in points], dtype=np.float64)
    n = np.array([p.n_params for p in points], dtype=np.float64)
    d = np.array([p.n_atoms for p in points], dtype=np.float64)
    x = n * d
    kappa = _fit_origin(x, c)
    line = _fit_line(x, c)
    r2 = _r_squared_origin(x, c, kappa)

    rows: list[KappaRow] = []
    for w in dict.fromkeys(p.width for p in points):
        sel = [i for i, p in enumerate(points) if p.width == w]
        per_atom = _fit_origin(d[sel], c[sel])
        rows.append(KappaRow(w, points[sel[0]].n_params, per_atom, per_atom / points[sel[0]].n_params))

    loglog = None
    if len(rows) >= 2:
        ln_n = np.log([r.n_params for r in rows])
        ln_c = np.log([r.flops_per_atom for r in rows])
        if np.unique(ln_n).size >= 2:
            loglog = float(np.polyfit(ln_n, ln_c, 1)[0])
    kappas = [r.kappa for r in rows]
    drift = max(kappas) / min(kappas) - 1.0 if min(kappas) > 0 else math.inf
    warning = None
    if len(rows) >= 2 and drift > tol:
        lo, hi = min(rows, key=lambda r: r.kappa), max(rows, key=lambda r: r.kappa)
        warning = (f"kappa drifts with model size by {100 * drift:.0f}% (from {lo.kappa:.3g} at "
                   f"N={lo.n_params:,} to {hi.kappa:.3g} at N={hi.n_params:,}); C is not "
                   "proportional to N*D over this range -- quote the per-size table, not one kappa")
        warnings.warn(warning, KappaDriftWarning, stacklevel=3)
    edges = sum(p.n_edges for p in points)
    mean_nb = edges / float(d.sum()) if edges > 0 else None
    return KappaEstimate(
        kappa=kappa,
        kappa_intercept_fit=line,
        per_size=tuple(rows),
        loglog_slope=loglog,
        mean_neighbors=mean_nb,
        r_squared=r2,
        drift=float(drift),
        warning=warning,
        points=tuple(points),
        uncounted=MappingProxyType(dict(sorted(uncounted.items()))),
    )
