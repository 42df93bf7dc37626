"""Molecular data: the built-in probe geometries and (later) labelled data sets and loaders."""

from nnip_scaling.data.molecules import Molecule, builtin_molecules

__all__ = ["Molecule", "builtin_molecules"]
