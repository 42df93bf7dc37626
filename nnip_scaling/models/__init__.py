r"""Model families, ``build_model``, the paper's ladders and μP helpers.

.. code-block:: python

    from nnip_scaling.models import build_model, ladder
    model = build_model("cartesian", width=64, depth=12)     # out = model(graph)
    out.energy  # [n_graphs]
    out.forces  # [n_atoms, 3]
    same = build_model(**dataclasses.asdict(model.config))   # rebuilds the architecture

How a family plugs in (full contract: :mod:`nnip_scaling.models.base` and docs/architecture_models.md):

1. write ``nnip_scaling/models/<kind>.py`` defining ``<Kind>Config(ModelConfig)`` (frozen, kw_only,
   ``family = "<kind>"``, ``kind = "<kind>"``, the family options as fields with defaults) and
   ``<Kind>Model(Potential)`` (``config_class``, ``ladder_options``, ``__init__(config)`` that passes
   ``embedding``, ``representation``, ``energy_head`` and ``force_head`` to ``Potential.__init__``);
2. :data:`~nnip_scaling.models.build.FAMILIES` already maps the four kinds to
   ``nnip_scaling.models.{unconstrained,directional,cartesian,spherical}:<Kind>Model``; the module is
   imported lazily by :func:`build_model`, so adding the module is all that is needed (a new kind adds
   one line there and its table in :mod:`nnip_scaling.models.ladders`).

There is no registry and no mutable global: the mapping is a read-only constant.
"""

from nnip_scaling.models.augment import random_rotate
from nnip_scaling.models.base import ModelOutput, Potential, RepresentationState
from nnip_scaling.models.build import (
    FAMILIES,
    KINDS,
    build_model,
    count_parameters,
    family_class,
    mup_learning_rate,
)
from nnip_scaling.models.config import ModelConfig
from nnip_scaling.models.ladders import (
    PAPER_LADDERS,
    LadderComparison,
    LadderRung,
    ladder,
    ladder_comparison,
    paper_ladder,
)

__all__ = [
    "FAMILIES",
    "KINDS",
    "LadderComparison",
    "LadderRung",
    "ModelConfig",
    "ModelOutput",
    "PAPER_LADDERS",
    "Potential",
    "RepresentationState",
    "build_model",
    "count_parameters",
    "family_class",
    "ladder",
    "ladder_comparison",
    "mup_learning_rate",
    "paper_ladder",
    "random_rotate",
]
