"""nnip_scaling: build and scale neural interatomic potentials.

Four message-passing families of increasing symmetry (unconstrained MPNN, directional GemNet-OC style,
Cartesian-vector MC-EGNN, SO(2)-sparsified spherical eSEN style), a FLOP counter with
``estimate_kappa``, and scaling-law fits (Pareto frontiers, power laws, the sum power law, compute-optimal
allocation with bootstrap confidence intervals). See *Scaling Laws and Symmetry, Evidence from Neural
Force Fields* and ``docs/``.

The names below are imported on first use (PEP 562), so ``import nnip_scaling`` and
``nnip-scaling --help`` do not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nnip_scaling._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from nnip_scaling.graph import AtomicGraph, collate
    from nnip_scaling.neighbors import radius_graph

__all__ = ["AtomicGraph", "collate", "radius_graph", "__version__"]

_LAZY = {"AtomicGraph": "nnip_scaling.graph", "collate": "nnip_scaling.graph",
         "radius_graph": "nnip_scaling.neighbors"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nnip_scaling' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
