"""The study's data: the training split and the validation configurations of the learning curves.

Loaded the same way in the main process and in every worker (a pure function of the settings), and
cached per process so that a worker running several runs reads the data once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["load_study_data"]

_CACHE: dict[tuple[str, float, int, int], tuple[Any, Any, str]] = {}


def load_study_data(data: str, val_fraction: float, val_molecules: int, seed: int) -> tuple[Any, Any, str]:
    """``(train, val, name)``: the data set ``data`` (``"builtin"`` or a file) split into training and
    validation molecules (its own split if it has one, else ``val_fraction`` of the molecules), with at
    most ``val_molecules`` validation configurations (a seeded subset).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the split leaves no training or no validation configuration.
    """
    key = (data, float(val_fraction), int(val_molecules), int(seed))
    if key not in _CACHE:
        _CACHE.clear()  # one study per process at a time: keep one data set in memory
        _CACHE[key] = _load(*key)
    return _CACHE[key]


def _load(data: str, val_fraction: float, val_molecules: int, seed: int) -> tuple[Any, Any, str]:
    from nnip_scaling.data import load_dataset, load_npz, read_ase

    if data == "builtin":
        ds = load_dataset("builtin")
        name = "built-in GFN2-xTB set"
    else:
        p = Path(data)
        if not p.is_file():
            raise FileNotFoundError(f"data: no file {p}")
        ds = load_npz(p) if p.suffix == ".npz" else read_ase(p)
        name = str(p)
    if ds.molecule_split is None:
        ds = ds.split_by_molecule((1.0 - val_fraction, val_fraction, 0.0), seed=seed)
    train, val = ds.split("train"), ds.split("val")
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"data: the split left {len(train)} training and {len(val)} validation configurations")
    if len(val) > val_molecules:
        val = val.subset(val_molecules / len(val), seed=seed)
    return train, val, name
