r"""``build_model``: kind -> family class, by a static mapping (no registry, nothing mutable).

Each entry of :data:`FAMILIES` names a module and a class, ``"package.module:ClassName"``; the module is
imported only when that kind is built, so a family plugs in by adding its module and one line here.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from nnip_scaling.models.base import Potential
from nnip_scaling.models.config import ModelConfig, dtype_name

__all__ = ["FAMILIES", "KINDS", "build_model", "family_class", "mup_learning_rate", "count_parameters"]

#: kind -> "module:ClassName" of the family's model class (a :class:`~nnip_scaling.models.base.Potential`).
FAMILIES: Mapping[str, str] = MappingProxyType(
    {
        "unconstrained": "nnip_scaling.models.unconstrained:UnconstrainedModel",
        "directional": "nnip_scaling.models.directional:DirectionalModel",
        "cartesian": "nnip_scaling.models.cartesian:CartesianModel",
        "spherical": "nnip_scaling.models.spherical:SphericalModel",
    }
)

#: The four kinds, in order of increasing symmetry constraint (paper table 2).
KINDS: tuple[str, ...] = tuple(FAMILIES)


def family_class(kind: str) -> type[Potential]:
    """The model class of ``kind`` (imports its module on first use).

    Raises:
        ValueError: unknown ``kind``.
        ImportError: the family's module is not available (not written yet / broken install).
    """
    if not isinstance(kind, str) or kind not in FAMILIES:
        raise ValueError(f"kind must be one of {sorted(FAMILIES)}, got {kind!r}")
    module_path, _, class_name = FAMILIES[kind].partition(":")
    try:
        module = importlib.import_module(module_path)
    except ModuleNotFoundError as err:
        if err.name == module_path:
            raise ImportError(f"model family {kind!r} is not available: module {module_path} not found") from err
        raise
    cls = getattr(module, class_name)
    if not (isinstance(cls, type) and issubclass(cls, Potential)):  # pragma: no cover - contract check
        raise TypeError(f"{FAMILIES[kind]} must be a subclass of Potential")
    return cls


def build_model(
    kind: str,
    width: int,
    depth: int,
    *,
    cutoff: float = 6.0,
    max_neighbors: int | None | str = "auto",
    max_z: int = 100,
    forces: str = "direct",
    dtype: Any = None,
    **family_options: Any,
) -> Potential:
    r"""Build a model of family ``kind`` with random (μP-initialised) weights.

    Args:
        kind: ``"unconstrained"`` (paper C.1), ``"directional"`` (C.2), ``"cartesian"`` (C.3) or
            ``"spherical"`` (C.4).
        width: scalar width :math:`w` (``"spherical"``: channels :math:`C` per :math:`(\ell, m)`), >= 1.
        depth: number of message-passing blocks, >= 1.
        cutoff: radius (Å) of the graph built when the input graph has none (paper appendix D: 6 Å).
        max_neighbors: neighbour cap of that graph (paper: 30); ``None``: no cap. ``"auto"``
            (default): 30 with ``forces="direct"``, ``None`` with ``forces="conservative"``.
        max_z: largest atomic number accepted (1..118).
        forces: ``"direct"`` (force head, the paper's setting) or ``"conservative"`` (:math:`-\nabla E`).
            Conservative models are built **smooth** by default (no neighbour caps, a smooth
            ``aggregation``, every cutoff enveloped), so that molecular dynamics conserves energy;
            direct ones in the paper's form (docs/models/smoothness.md).
        dtype: parameter dtype (``torch.float64``, ``"float64"``, ...) or ``None`` for torch's default.
        **family_options: the family's own options (e.g. ``vector_channels`` for ``"cartesian"``,
            ``aggregation="mean" | "soft_mean" | "sum"`` for ``"unconstrained"``, ``"cartesian"`` and
            ``"spherical"``, ``quadruplet_max_neighbors`` for ``"directional"``); see the family's config
            class.

    Returns:
        a :class:`~nnip_scaling.models.base.Potential`; ``model.config`` is the family config, and
        ``build_model(**dataclasses.asdict(model.config))`` rebuilds the same architecture.

    Raises:
        ValueError: unknown ``kind``, ``width``/``depth`` < 1, bad options (naming the argument).
        TypeError: an option the family does not have, or of the wrong type.
    """
    cls = family_class(kind)
    names = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(family_options) - names)
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for kind={kind!r}; "
            f"valid family options: {sorted(names - {f.name for f in dataclasses.fields(ModelConfig)})}"
        )
    config = cls.config_class(
        kind=kind,
        width=width,
        depth=depth,
        cutoff=cutoff,
        max_neighbors=max_neighbors,
        max_z=max_z,
        forces=forces,
        dtype=dtype_name(dtype),
        **family_options,
    )
    return cls(config)


def mup_learning_rate(base_lr: float, base_width: int, width: int) -> float:
    r"""The paper's global learning-rate transfer (section 3.3): :math:`\eta(w) = \eta^* \cdot w_\text{base} / w`.

    Applied to every parameter this is ``train(..., lr_rule="global")``. It is μP's rate for the hidden
    weights only: embeddings, biases and gains keep :math:`\eta^*` under μP, which ``train``'s default
    ``lr_rule="mup"`` does per parameter (:mod:`nnip_scaling.train.mup`, docs/training.md).

    Args:
        base_lr: :math:`\eta^*`, tuned at ``base_width`` (> 0).
        base_width: :math:`w_\text{base}` (>= 1).
        width: :math:`w` (>= 1).

    Raises:
        ValueError: non-positive or non-finite arguments.
    """
    if isinstance(base_lr, bool) or not isinstance(base_lr, (int, float)) or not (math.isfinite(base_lr) and base_lr > 0):
        raise ValueError(f"base_lr must be a finite positive number, got {base_lr!r}")
    for name, v in (("base_width", base_width), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= 1):
            raise ValueError(f"{name} must be a number >= 1, got {v!r}")
    return float(base_lr) * float(base_width) / float(width)


def count_parameters(model: Any) -> int:
    """Number of trainable parameters of an ``nn.Module`` (the paper's :math:`N`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
