"""The check every message-passing block makes first: were edges passed at all?

A graph built from positions carries no edges until ``graph.with_edges(cutoff)`` is called; a
custom module that hands ``graph.edge_index`` (``None``) to a block would otherwise fail deep inside
with ``'NoneType' object is not subscriptable``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MissingEdgesError", "require_edges"]


class MissingEdgesError(ValueError):
    """A block was called without edges (``edge_index`` / ``edge_vec`` is ``None``)."""


def require_edges(block: str, **edge_args: Any) -> None:
    """Raise :class:`MissingEdgesError` naming ``block`` and every edge argument that is ``None``."""
    missing = [name for name, value in edge_args.items() if value is None]
    if missing:
        got = ", ".join(f"{name}=None" for name in missing)
        raise MissingEdgesError(
            f"{block} got {got}: the graph carries no edges. Build them before calling the block: "
            "graph = graph.with_edges(cutoff) (optionally max_neighbors=...), then pass "
            "graph.edge_index and graph.edge_vec."
        )
