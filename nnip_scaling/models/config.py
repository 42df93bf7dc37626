r"""Model configurations: one frozen dataclass per family, fields = ``build_model``'s keyword arguments.

Every family config derives from :class:`ModelConfig`, which holds the arguments shared by all four
families (``kind, width, depth, cutoff, max_neighbors, max_z, forces, dtype``); a family adds its own
options as further keyword-only fields with defaults. Because the fields are exactly the keyword
arguments of :func:`~nnip_scaling.models.build_model`,

.. code-block:: python

    model2 = build_model(**dataclasses.asdict(model.config))

rebuilds the same architecture (and ``model2.load_state_dict(model.state_dict())`` loads back exactly).
``dtype`` is stored as a string (``"float32"``/``"float64"``/...) or ``None`` (torch's default dtype at
build time) so that configs serialise to JSON.

Validation happens in ``__post_init__``: bad values raise ``ValueError`` (``TypeError`` for wrong types)
naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from nnip_scaling.nn.aggregation import check_aggregation, check_avg_num_neighbors

__all__ = [
    "AUTO",
    "AggregatingConfig",
    "FORCE_MODES",
    "ModelConfig",
    "PAPER_MAX_NEIGHBORS",
    "dtype_name",
    "resolve_dtype",
]

FORCE_MODES = ("direct", "conservative")

#: Default of the options whose value depends on ``forces`` (resolved in ``__post_init__``).
AUTO = "auto"
#: The paper's neighbour cap (appendix D), the ``"auto"`` value of ``max_neighbors`` for direct forces.
PAPER_MAX_NEIGHBORS = 30

_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


def dtype_name(dtype: Any) -> str | None:
    """Normalise ``dtype`` (``None``, a ``torch.dtype`` or its name) to a name such as ``"float64"``."""
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        for name, dt in _DTYPES.items():
            if dt == dtype:
                return name
        raise ValueError(f"dtype must be a floating dtype {sorted(_DTYPES)}, got {dtype}")
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
        if name in _DTYPES:
            return name
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)} or None, got {dtype!r}")
    raise TypeError(f"dtype must be None, a torch.dtype or a string, got {type(dtype).__name__}")


def resolve_dtype(name: str | None) -> torch.dtype:
    """The ``torch.dtype`` for a stored name; ``None`` means ``torch.get_default_dtype()``."""
    return torch.get_default_dtype() if name is None else _DTYPES[name]


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an ``int >= minimum`` (bools rejected), else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Arguments shared by every model family (see :func:`~nnip_scaling.models.build_model`).

    Attributes:
        kind: family name (``"unconstrained"``, ``"directional"``, ``"cartesian"``, ``"spherical"``).
        width: family-defined width (scalar channels ``w``; for ``"spherical"`` the channels ``C`` per
            ``(l, m)``), >= 1.
        depth: number of message-passing blocks, >= 1.
        cutoff: radius (Å) of the graph the model builds when a graph comes without edges, > 0.
        max_neighbors: neighbour cap of that graph (``None``: no cap), >= 1. ``"auto"`` (default):
            the paper's 30 with ``forces="direct"``, ``None`` with ``forces="conservative"`` (a cap
            that binds makes the energy jump when two neighbours swap rank; docs/models/smoothness.md).
        max_z: largest atomic number the embedding accepts, 1..118.
        forces: ``"direct"`` (a force head) or ``"conservative"`` (:math:`F = -\\partial E/\\partial x`).
        dtype: parameter dtype name (``"float32"``, ``"float64"``, ...) or ``None`` for torch's default.
    """

    family: ClassVar[str | None] = None  # a family config sets its kind here (and as kind's default)

    kind: str
    width: int
    depth: int
    cutoff: float = 6.0
    max_neighbors: int | None | str = AUTO
    max_z: int = 100
    forces: str = "direct"
    dtype: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str):
            raise TypeError(f"kind must be a string, got {type(self.kind).__name__}")
        if self.family is not None and self.kind != self.family:
            raise ValueError(f"kind must be {self.family!r} for {type(self).__name__}, got {self.kind!r}")
        check_positive_int("width", self.width)
        check_positive_int("depth", self.depth)
        if isinstance(self.cutoff, bool) or not isinstance(self.cutoff, (int, float)):
            raise TypeError(f"cutoff must be a number, got {type(self.cutoff).__name__}")
        if not (math.isfinite(self.cutoff) and self.cutoff > 0):
            raise ValueError(f"cutoff must be a finite positive number (Å), got {self.cutoff!r}")
        object.__setattr__(self, "cutoff", float(self.cutoff))
        check_positive_int("max_z", self.max_z)
        if self.max_z > 118:
            raise ValueError(f"max_z must be <= 118, got {self.max_z}")
        if self.forces not in FORCE_MODES:
            raise ValueError(f"forces must be one of {FORCE_MODES}, got {self.forces!r}")
        if self.max_neighbors == AUTO:
            auto = None if self.forces == "conservative" else PAPER_MAX_NEIGHBORS
            object.__setattr__(self, "max_neighbors", auto)
        if self.max_neighbors is not None:
            check_positive_int("max_neighbors", self.max_neighbors)
        object.__setattr__(self, "dtype", dtype_name(self.dtype))

    @property
    def torch_dtype(self) -> torch.dtype:
        """The parameter dtype (``torch.get_default_dtype()`` when ``dtype`` is ``None``)."""
        return resolve_dtype(self.dtype)


@dataclass(frozen=True, kw_only=True)
class AggregatingConfig(ModelConfig):
    """A :class:`ModelConfig` with a choice of neighbour aggregation (:mod:`nnip_scaling.nn.aggregation`).

    Attributes:
        aggregation: ``"mean"`` (the paper's eq. 8: :math:`1/|N(v)|`, the energy jumps when a neighbour
            crosses the cutoff), ``"soft_mean"`` (envelope-weighted count :math:`1/(1 + \\sum_u u(r_{uv}))`,
            smooth) or ``"sum"`` (:math:`1/\\bar n`, smooth). ``None`` (default): the family's
            :attr:`direct_aggregation` with ``forces="direct"`` (the form the paper's study trains) and
            its :attr:`conservative_aggregation` with ``forces="conservative"`` (a smooth form, so that
            molecular dynamics conserves energy).
        avg_num_neighbors: :math:`\\bar n`, the fixed normaliser of ``"sum"`` (> 0).
    """

    direct_aggregation: ClassVar[str] = "mean"
    conservative_aggregation: ClassVar[str] = "soft_mean"

    aggregation: str | None = None
    avg_num_neighbors: float = 16.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.aggregation is None:
            auto = self.conservative_aggregation if self.forces == "conservative" else self.direct_aggregation
            object.__setattr__(self, "aggregation", auto)
        check_aggregation(self.aggregation)
        object.__setattr__(self, "avg_num_neighbors", check_avg_num_neighbors(self.avg_num_neighbors))
