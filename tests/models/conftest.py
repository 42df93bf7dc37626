from __future__ import annotations

import pytest
import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.data.molecules import builtin_molecules


def molecules_graph(n: int = 4, dtype: torch.dtype = torch.float64, start: int = 20) -> AtomicGraph:
    """A batch of ``n`` built-in molecules (varied sizes) in ``dtype``."""
    mols = builtin_molecules()[start : start + n]
    return AtomicGraph.from_molecules([m.as_tuple() for m in mols], dtype=dtype)


@pytest.fixture
def graph64() -> AtomicGraph:
    return molecules_graph(4, torch.float64)


@pytest.fixture
def graph32() -> AtomicGraph:
    return molecules_graph(4, torch.float32)
