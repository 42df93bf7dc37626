r"""Which options of a model make its energy discontinuous (or its forces non-conservative).

Molecular dynamics conserves energy only if the forces are :math:`-\partial E/\partial x` of an
energy that is a smooth function of the positions. Four options of our models break that:

* ``forces="direct"``: the forces come from a head, not from :math:`-\nabla E` (fix:
  ``forces="conservative"``);
* ``aggregation="mean"`` (the paper's eq. 8): :math:`1/|\mathcal N(v)|` jumps when a neighbour
  crosses the cutoff (fix: ``aggregation="soft_mean"`` or ``"sum"``);
* ``max_neighbors`` (the paper's 30): a cap that binds keeps the nearest neighbours only, so the
  energy jumps when two neighbours swap rank (fix: ``max_neighbors=None``);
* ``quadruplet_max_neighbors`` (directional family, GemNet-OC's 8): the same for the quadruplet graph
  (fix: ``quadruplet_max_neighbors=None``).

:func:`discontinuities` lists those that apply to a config (a cap only where it can bind: with
``n_atoms`` given, when some atom can have more than ``cap`` neighbours); the ASE calculator warns
with them (:class:`DiscontinuousEnergyWarning`). Conservative models are built without any of them by
default (docs/models/smoothness.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnip_scaling.models.config import ModelConfig

__all__ = ["Discontinuity", "DiscontinuousEnergyWarning", "discontinuities", "is_smooth"]


class DiscontinuousEnergyWarning(UserWarning):
    """A model whose energy jumps or whose forces are not :math:`-\\nabla E` is used for dynamics."""


@dataclass(frozen=True)
class Discontinuity:
    """One option that breaks energy conservation.

    Attributes:
        option: the config field (``"forces"``, ``"aggregation"``, ``"max_neighbors"``,
            ``"quadruplet_max_neighbors"``).
        value: its value in the config.
        reason: what goes wrong.
        fix: the setting that removes it.
    """

    option: str
    value: Any
    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.option}={self.value!r}: {self.reason}; use {self.fix}"


def _cap_binds(cap: int | None, n_atoms: int | None) -> bool:
    return cap is not None and (n_atoms is None or n_atoms - 1 > cap)


def discontinuities(config: ModelConfig, *, n_atoms: int | None = None) -> tuple[Discontinuity, ...]:
    """The options of ``config`` that make the energy discontinuous or the forces non-conservative.

    Args:
        config: a model config (``model.config``).
        n_atoms: size of the system the model will see; a neighbour cap is reported only if it can
            bind there (``n_atoms - 1 > cap``). ``None``: report every cap.

    Returns:
        a tuple of :class:`Discontinuity`, empty for a smooth conservative model.
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig (model.config), got {type(config).__name__}")
    found = []
    if config.forces == "direct":
        found.append(Discontinuity(
            "forces", "direct", "the forces come from a force head, not from -dE/dx, so dynamics does not "
            "conserve the energy", "forces='conservative'"))
    if getattr(config, "aggregation", None) == "mean":
        found.append(Discontinuity(
            "aggregation", "mean", "the mean over |N(v)| (paper eq. 8) jumps whenever a neighbour crosses the "
            "cutoff", "aggregation='soft_mean' (or 'sum')"))
    if _cap_binds(config.max_neighbors, n_atoms):
        found.append(Discontinuity(
            "max_neighbors", config.max_neighbors, "a neighbour cap that binds makes the energy jump when two "
            "neighbours swap rank", "max_neighbors=None"))
    if getattr(config, "quadruplets", False) and _cap_binds(getattr(config, "quadruplet_max_neighbors", None), n_atoms):
        found.append(Discontinuity(
            "quadruplet_max_neighbors", config.quadruplet_max_neighbors,  # type: ignore[attr-defined]
            "the quadruplet-graph cap makes the energy jump when two neighbours swap rank",
            "quadruplet_max_neighbors=None"))
    return tuple(found)


def is_smooth(config: ModelConfig, *, n_atoms: int | None = None) -> bool:
    """``True`` when ``config`` has none of the :func:`discontinuities` (an MD-ready model)."""
    return not discontinuities(config, n_atoms=n_atoms)
