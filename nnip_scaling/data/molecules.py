"""A small built-in set of equilibrium molecular geometries (no labels).

The geometries are the closed-shell H/C/N/O/F/S/Cl molecules (3-14 atoms, 90 in all) of the G2
collection as shipped by ASE, stored in ``molecules.json`` beside this module. They serve as probe
inputs: neighbour statistics (``nnip-scaling graph``), FLOP counting and ``estimate_kappa``, and smoke
tests. They carry no energies or forces; labelled data live in :mod:`nnip_scaling.data` loaders.

The file is read on first call, never at import.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = ["Molecule", "builtin_molecules"]


@dataclass(frozen=True)
class Molecule:
    """One molecular geometry.

    Attributes:
        name: identifier in the source collection (e.g. ``"CH3CH2OH"``).
        formula: Hill-style chemical formula.
        atomic_numbers: int64 array ``[n_atoms]``.
        positions: float64 array ``[n_atoms, 3]`` in Å.
    """

    name: str
    formula: str
    atomic_numbers: np.ndarray
    positions: np.ndarray

    def as_tuple(self) -> tuple[np.ndarray, np.ndarray]:
        """``(Z, R)``, the form accepted by :meth:`AtomicGraph.from_molecules`."""
        return self.atomic_numbers, self.positions


@functools.lru_cache(maxsize=1)
def _load() -> tuple[Molecule, ...]:
    text = resources.files("nnip_scaling.data").joinpath("molecules.json").read_text()
    raw = json.loads(text)
    out = []
    for m in raw["molecules"]:
        z = np.asarray(m["atomic_numbers"], dtype=np.int64)
        r = np.asarray(m["positions"], dtype=np.float64).reshape(-1, 3)
        z.setflags(write=False)
        r.setflags(write=False)
        out.append(Molecule(m["name"], m["formula"], z, r))
    return tuple(out)


def builtin_molecules(n: int | None = None) -> list[Molecule]:
    """Return the built-in molecules (the first ``n`` if given; all 90 by default).

    Args:
        n: how many to return, ``1 <= n <= 90``; ``None`` for all.

    Raises:
        ValueError: ``n`` out of range.
    """
    mols = _load()
    if n is None:
        return list(mols)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n > len(mols):
        raise ValueError(f"n must be an integer in 1..{len(mols)}, got {n!r}")
    return list(mols[:n])
