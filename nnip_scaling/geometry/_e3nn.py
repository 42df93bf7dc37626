"""Import ``e3nn.o3`` on every e3nn we support (0.4.4 and >= 0.5), whatever the torch version.

e3nn 0.4.x (the version mace-torch pins) reads its constant file with ``torch.load`` at import.
The file holds Python ``slice`` objects, which torch >= 2.6 refuses under its default
``weights_only=True`` loading. mace-torch works around it by setting
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for the whole process; here only ``slice`` is allowed, and
only while e3nn is imported.

What we use from e3nn: ``o3.spherical_harmonics`` (identical in 0.4.4 and 0.6, tested). The Wigner
3j symbols come from :mod:`nnip_scaling.geometry.clebsch_gordan`, not from e3nn, whose signs
changed between 0.4 and 0.5.
"""

from __future__ import annotations

import functools
from types import ModuleType

import torch

__all__ = ["e3nn_o3", "e3nn_version"]


@functools.lru_cache(maxsize=None)
def e3nn_o3() -> ModuleType:
    """The module ``e3nn.o3``."""
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:  # torch < 2.5: weights_only is off by default, nothing to allow
        from e3nn import o3
    else:
        with safe_globals([slice]):
            from e3nn import o3
    return o3


def e3nn_version() -> tuple[int, int]:
    """``(major, minor)`` of the installed e3nn."""
    import e3nn

    major, minor = e3nn.__version__.split(".")[:2]
    return int(major), int(minor)
