"""The training tests' toy data set (tests/train/conftest.py), loaded under its own module name."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_train_conftest_for_study",
                                               Path(__file__).parents[1] / "train" / "conftest.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
toy_dataset = _mod.toy_dataset

__all__ = ["toy_dataset"]
