"""Molecular data: built-in probe geometries, the built-in labelled set, loaders, batching, referencing.

Nothing is read at import time, and nothing here imports rdkit, tblite or ase (the generator in
:mod:`nnip_scaling.data.build` and :func:`read_ase` import them when called).
"""

from nnip_scaling.data.dataset import SPLITS, Configuration, MoleculeDataset, iter_batches
from nnip_scaling.data.io import load_dataset, load_npz, read_ase, save_npz
from nnip_scaling.data.molecules import Molecule, builtin_molecules
from nnip_scaling.data.reference import Normaliser, fit_element_references

__all__ = [
    "Molecule",
    "builtin_molecules",
    "Configuration",
    "MoleculeDataset",
    "SPLITS",
    "iter_batches",
    "load_dataset",
    "load_npz",
    "save_npz",
    "read_ase",
    "Normaliser",
    "fit_element_references",
]
