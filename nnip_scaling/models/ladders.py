r"""The paper's scaling ladders (tables 3-6) as configs.

:data:`PAPER_LADDERS` holds the tables' numbers (depth, width, the paper's parameter count, and the graph
settings of appendix D). :func:`ladder` turns them into configs of our families, adding the family's
``ladder_options`` (e.g. ``l_max=4, m_max=2`` for the spherical family); our parameter counts differ from
the paper's (our implementations are not theirs): see docs/architecture_models.md and
:func:`ladder_comparison`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch

from nnip_scaling.models.build import FAMILIES, build_model, family_class
from nnip_scaling.models.config import ModelConfig

__all__ = ["LadderRung", "PAPER_LADDERS", "ladder", "paper_ladder", "LadderComparison", "ladder_comparison"]


@dataclass(frozen=True)
class LadderRung:
    """One row of a paper ladder table.

    Attributes:
        depth: number of blocks.
        width: the table's width (``"spherical"``: channels :math:`C`).
        paper_params: the table's parameter count.
        cutoff: graph radius, Å (appendix D).
        max_neighbors: neighbour cap (appendix D).
    """

    depth: int
    width: int
    paper_params: int
    cutoff: float = 6.0
    max_neighbors: int = 30


def _rungs(depth: int, rows: list[tuple[int, int]], **graph: float) -> tuple[LadderRung, ...]:
    return tuple(LadderRung(depth, w, p, **graph) for w, p in rows)  # type: ignore[arg-type]


_TABLES: dict[str, tuple[LadderRung, ...]] = {
    # Table 3: unconstrained MPNN, depth 5.
    "unconstrained": _rungs(5, [
        (128, 222404), (256, 838020), (320, 1293284), (375, 1763133), (441, 2422704), (517, 3311714),
        (607, 4543769), (712, 6226800), (835, 8535023), (1150, 16101729), (1349, 22109506),
        (1583, 30389712), (1857, 41755644), (2179, 57415632), (2557, 78974296),
    ]),
    # Table 6: GemNet-OC, depth 4; appendix D: cutoff 10 Å, 50 neighbours.
    "directional": _rungs(4, [
        (32, 312992), (48, 575472), (64, 937280), (80, 1398416), (96, 1958880), (112, 2618672),
        (128, 3377792), (144, 4236240), (160, 5194016), (176, 6251120), (192, 7407552), (204, 8340060),
    ], cutoff=10.0, max_neighbors=50),
    # Table 4: EGNN (multi-channel), depth 12, E = sqrt(w) vector channels.
    "cartesian": _rungs(12, [
        (32, 156358), (48, 306199), (56, 403992), (64, 516553), (81, 786925), (102, 1195553),
        (120, 1590131), (160, 2745453), (200, 4231015), (300, 9214218), (500, 24959524),
        (600, 35673024), (721, 51092972), (800, 63035228),
    ]),
    # Table 5: eSEN, depth 12, l_max 4, m_max 2, hidden 32; width = channels C.
    "spherical": _rungs(12, [
        (4, 441778), (8, 878434), (10, 1100746), (12, 1325714), (16, 1783618), (20, 2252146),
        (32, 3721474),
    ]),
}
#: kind -> the paper's ladder (tables 3, 6, 4, 5).
PAPER_LADDERS: Mapping[str, tuple[LadderRung, ...]] = MappingProxyType({k: _TABLES[k] for k in FAMILIES})  # read-only, in FAMILIES order


def paper_ladder(kind: str) -> tuple[LadderRung, ...]:
    """The paper's table for ``kind`` (no family import)."""
    if kind not in PAPER_LADDERS:
        raise ValueError(f"kind must be one of {sorted(PAPER_LADDERS)}, got {kind!r}")
    return PAPER_LADDERS[kind]


def ladder(kind: str, *, forces: str = "direct", dtype: str | None = None) -> list[ModelConfig]:
    """The paper's scaling ladder for ``kind`` as configs (``build_model(**asdict(cfg))`` builds each).

    Args:
        kind: model family.
        forces: force mode of every rung (the paper: ``"direct"``).
        dtype: parameter dtype name or ``None``.
    """
    rungs = paper_ladder(kind)
    cls = family_class(kind)
    return [
        cls.config_class(
            kind=kind,
            width=r.width,
            depth=r.depth,
            cutoff=r.cutoff,
            max_neighbors=r.max_neighbors,
            forces=forces,
            dtype=dtype,
            **dict(cls.ladder_options),
        )
        for r in rungs
    ]


@dataclass(frozen=True)
class LadderComparison:
    """Our parameter count next to the paper's for one rung.

    Attributes:
        config: our config.
        params: our trainable parameters.
        paper_params: the table's count.
        relative_difference: ``params / paper_params - 1``.
    """

    config: ModelConfig
    params: int
    paper_params: int
    relative_difference: float


def ladder_comparison(kind: str) -> list[LadderComparison]:
    """Count our parameters for every rung of ``kind``'s ladder and compare with the paper's table.

    Counting uses a ``meta``-device build (no memory is allocated), so even the 79M-parameter rung is
    instant.
    """
    out = []
    for cfg, rung in zip(ladder(kind), paper_ladder(kind)):
        with torch.device("meta"):
            model = build_model(**dataclasses.asdict(cfg))
        n = sum(p.numel() for p in model.parameters() if p.requires_grad)
        out.append(LadderComparison(cfg, n, rung.paper_params, n / rung.paper_params - 1.0))
    return out
