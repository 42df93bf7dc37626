r"""κ of the four model families, counted and predicted, beside the paper's (section 4.1, figure 2).

:func:`family_kappa` builds a family at several widths (the paper's ladder settings: depth, cutoff,
neighbour cap and family options of :func:`~nnip_scaling.models.ladder`), counts the forward FLOPs
on nested probe batches (:func:`~nnip_scaling.flops.estimate_kappa`) and predicts κ from the
placement of the parameters (:func:`~nnip_scaling.flops.parameter_placement`) on the same batches.
:func:`kappa_table` formats the results; ``nnip-scaling kappa`` prints them and
``benchmarks/bench_flops.py`` records them.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nnip_scaling.flops.kappa import (
    PAPER_KAPPA,
    PROBE_SOURCES,
    KappaDriftWarning,
    KappaEstimate,
    _prepare,
    estimate_kappa,
    probe_graphs,
)
from nnip_scaling.flops.placement import KappaPrediction, parameter_placement

__all__ = ["FamilyKappa", "FamilyKappaRow", "default_widths", "family_kappa", "kappa_table"]


@dataclass(frozen=True)
class FamilyKappaRow:
    r"""κ of one model of a family.

    Attributes:
        width: the family's width (``"spherical"``: channels ``C``).
        n_params: trainable parameters :math:`N`.
        flops_per_atom: counted forward FLOPs per atom (fit through the origin over the batches).
        kappa: counted :math:`\kappa = C_\text{fwd}/(N D)`.
        kappa_predicted: :math:`\kappa` predicted from parameter placement (fit over the same
            batches).
        mean_neighbors: directed edges per atom over the batches.
        kappa_predicted_at_cap: the prediction with every atom at the neighbour cap
            (:meth:`KappaPrediction.kappa_at` with ``mean_neighbors = max_neighbors``), an estimate for
            data dense enough to saturate the cap; ``None`` without a cap.
        placement: the placement traced on the largest batch.
    """

    width: int
    n_params: int
    flops_per_atom: float
    kappa: float
    kappa_predicted: float
    mean_neighbors: float
    kappa_predicted_at_cap: float | None
    placement: KappaPrediction

    @property
    def predicted_over_counted(self) -> float:
        return self.kappa_predicted / self.kappa


@dataclass(frozen=True)
class FamilyKappa:
    r"""Counted and predicted κ of one family across widths.

    Attributes:
        kind: the family.
        depth: depth of every model.
        cutoff, max_neighbors: graph settings (the paper's, appendix D).
        probe: probe source (``"g2"`` or ``"gfn2"``, :func:`~nnip_scaling.flops.probe_graphs`).
        batch_sizes: molecules per probe batch.
        rows: one :class:`FamilyKappaRow` per width.
        estimate: the :class:`~nnip_scaling.flops.KappaEstimate` over all widths (fit through the
            origin as in figure 2, drift, per-size table).
        paper_kappa: the paper's κ for this architecture.
    """

    kind: str
    depth: int
    cutoff: float
    max_neighbors: int | None
    probe: str
    batch_sizes: tuple[int, ...]
    rows: tuple[FamilyKappaRow, ...]
    estimate: KappaEstimate
    paper_kappa: float


def default_widths(kind: str) -> tuple[int, ...]:
    """The first three rungs of the paper's ladder for ``kind`` (its smallest models)."""
    from nnip_scaling.models import paper_ladder

    return tuple(r.width for r in paper_ladder(kind)[:3])


def _fit_origin(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.dot(x, y) / np.dot(x, x))


def family_kappa(
    kind: str,
    widths: Sequence[int] | None = None,
    *,
    depth: int | None = None,
    probe: str = "g2",
    batch_sizes: Sequence[int] | None = None,
    seed: int = 0,
    **options: Any,
) -> FamilyKappa:
    r"""Counted and predicted κ of ``kind`` at several widths, with the paper's ladder settings.

    Every model is ``build_model(kind, width, depth=depth, cutoff=..., max_neighbors=...,
    **ladder_options, **options)`` with the cutoff, neighbour cap and family options of the paper's
    ladder (:func:`~nnip_scaling.models.paper_ladder`, ``ladder_options`` of the family), built
    with weights drawn under ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng``
    (FLOPs do not depend on weights; the caller's RNG state is untouched).

    Args:
        kind: model family.
        widths: widths to measure (default :func:`default_widths`).
        depth: depth (default: the paper's, e.g. 12 for ``"spherical"``).
        probe: ``"g2"`` or ``"gfn2"`` (:func:`~nnip_scaling.flops.probe_graphs`).
        batch_sizes: molecules per probe batch (default: the probe's).
        seed: seed of the probe permutation and of the weights.
        **options: config fields to override (e.g. ``hidden_channels=128``).

    Returns:
        A :class:`FamilyKappa`. A :class:`~nnip_scaling.flops.KappaDriftWarning` is not raised here
        (the drift is in ``estimate.drift``/``estimate.warning``).

    Raises:
        ValueError: unknown ``kind``/``probe``, bad widths or batch sizes.
    """
    from nnip_scaling.models import build_model, family_class, paper_ladder

    if probe not in PROBE_SOURCES:
        raise ValueError(f"probe must be one of {list(PROBE_SOURCES)}, got {probe!r}")
    rung = paper_ladder(kind)[0]
    if depth is None:
        depth = rung.depth
    ws = default_widths(kind) if widths is None else tuple(widths)
    kwargs = {"depth": depth, "cutoff": rung.cutoff, "max_neighbors": rung.max_neighbors,
              **dict(family_class(kind).ladder_options), **options}

    models: dict[int, torch.nn.Module] = {}  # built once per width, shared by count and trace

    def make(width: int) -> torch.nn.Module:
        if width not in models:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                models[width] = build_model(kind, width=width, **kwargs)
        return models[width]

    if not ws:
        raise ValueError("widths must not be empty")
    cfg0 = make(int(ws[0])).config  # validates depth and options before any counting
    sizes = tuple(PROBE_SOURCES[probe] if batch_sizes is None else batch_sizes)
    graphs = probe_graphs(sizes, seed=seed, source=probe, dtype=cfg0.torch_dtype)
    # edges once, outside every count (all widths share cutoff and cap)
    graphs = [g.with_edges(cfg0.cutoff, max_neighbors=cfg0.max_neighbors) for g in graphs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KappaDriftWarning)
        est = estimate_kappa(make, graphs, widths=list(ws))
    d = np.array([g.n_atoms for g in graphs], dtype=np.float64)
    nb = sum(g.n_edges for g in graphs) / float(d.sum())
    rows = []
    for size in est.per_size:
        assert size.width is not None
        model = models.pop(size.width)
        preds = [parameter_placement(model, _prepare(g, model, {})) for g in graphs]
        per_atom = _fit_origin(d, np.array([p.flops for p in preds]))
        last = preds[-1]
        cap = cfg0.max_neighbors
        rows.append(
            FamilyKappaRow(
                width=size.width,
                n_params=size.n_params,
                flops_per_atom=size.flops_per_atom,
                kappa=size.kappa,
                kappa_predicted=per_atom / size.n_params,
                mean_neighbors=nb,
                kappa_predicted_at_cap=None if cap is None else last.kappa_at(mean_neighbors=float(cap)),
                placement=last,
            )
        )
        del model
    return FamilyKappa(
        kind=kind,
        depth=depth,
        cutoff=cfg0.cutoff,
        max_neighbors=cfg0.max_neighbors,
        probe=probe,
        batch_sizes=sizes,
        rows=tuple(rows),
        estimate=est,
        paper_kappa=PAPER_KAPPA[kind],
    )


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None or not math.isfinite(v) else format(v, spec)


def kappa_table(results: Sequence[FamilyKappa]) -> str:
    """The per-width table (markdown) followed by one line per family (fit, drift, paper κ)."""
    head = ("| family | probe | depth | width | N | FLOPs/atom | κ counted | κ predicted | pred/counted "
            "| neighbours/atom | κ pred @ cap | κ paper |")
    lines = [head, "|" + "|".join("---" if i < 2 else "---:" for i in range(12)) + "|"]
    for r in results:
        for row in r.rows:
            cap = "-" if r.max_neighbors is None else f"{_fmt(row.kappa_predicted_at_cap, '.2f')} ({r.max_neighbors})"
            lines.append(
                f"| {r.kind} | {r.probe} | {r.depth} | {row.width} | {row.n_params:,} | "
                f"{row.flops_per_atom:,.0f} | {row.kappa:.2f} | {row.kappa_predicted:.2f} | "
                f"{row.predicted_over_counted:.3f} | {row.mean_neighbors:.2f} | {cap} | {r.paper_kappa:.2f} |"
            )
    lines.append("")
    for r in results:
        e = r.estimate
        lines.append(
            f"{r.kind} ({r.probe}, cutoff {r.cutoff:g} Å, cap {r.max_neighbors}): κ fit through the origin "
            f"over widths {', '.join(str(x.width) for x in r.rows)} = {e.kappa:.2f} (paper {r.paper_kappa:.2f}); "
            f"drift {100 * e.drift:.0f}%"
            + ("" if e.loglog_slope is None else f", log-log slope {e.loglog_slope:.3f}")
        )
    return "\n".join(lines)
