r"""Training along scaling ladders and the one-command scaling study (paper sections 3.2-3.3, 4.4-4.5,
appendices D and H).

.. code-block:: python

    from nnip_scaling.data import load_dataset
    from nnip_scaling.models import build_model
    from nnip_scaling.train import train

    model = build_model("cartesian", width=16, depth=2)
    result = train(model, load_dataset("builtin", split="train"), load_dataset("builtin", split="val"),
                   tokens=20_000, batch_size=16, lr=1e-3, eval_every=20, out_dir="runs/cartesian-16")
    result.run_log()          # learning curve with N, D, FLOPs, hours -> nnip_scaling.scaling fits

* :func:`train`: eq. (1) loss, schedule-free AdamW (extra ``train``), μP learning rates, single-epoch
  streaming or multi-epoch with rotation augmentation, gradient clipping, exact resume, DDP.
* :func:`force_field_loss` / :func:`loss_terms`: eq. (1).
* :func:`symmetry_loss` (eq. 2) and :class:`GroupAveraged` (eq. 23).
* the study (:func:`run_study`, :class:`StudyConfig`, ...) lives in :mod:`nnip_scaling.study`; its names are
  still importable from here.

Optional dependencies are imported when used: ``schedulefree`` (and ``tqdm`` for progress bars) by
:func:`train`, ``matplotlib`` by the study's plots.
"""

from nnip_scaling.train.checkpoint import atomic_save, load_checkpoint, load_model
from nnip_scaling.train.distributed import DistInfo, dist_info, init_distributed
from nnip_scaling.train.loop import (
    EvalResult,
    EvalRow,
    NonFiniteLossError,
    PhaseTimes,
    TrainConfig,
    TrainResult,
    evaluate,
    train,
)
from nnip_scaling.train.loss import LossTerms, force_field_loss, loss_terms
from nnip_scaling.train.symmetry import GroupAveraged, symmetry_loss, symmetry_terms

__all__ = [
    "DistInfo",
    "EvalResult",
    "EvalRow",
    "FamilyFit",
    "FamilySpec",
    "GroupAveraged",
    "LossTerms",
    "NonFiniteLossError",
    "PhaseTimes",
    "StudyConfig",
    "StudyResult",
    "TrainConfig",
    "TrainResult",
    "atomic_save",
    "default_config",
    "dist_info",
    "evaluate",
    "force_field_loss",
    "init_distributed",
    "load_checkpoint",
    "load_config",
    "load_model",
    "loss_terms",
    "run_study",
    "symmetry_loss",
    "symmetry_terms",
    "train",
]

# The study moved to nnip_scaling.study; its names stay importable from here (loaded on first use, so that
# importing the training loop does not import the study, which imports the loop).
_STUDY_NAMES = {"FamilySpec": "FamilySpec", "StudyConfig": "StudyConfig", "StudyResult": "StudyResult",
                "default_config": "default_config", "load_config": "load_config", "run_study": "run_study"}


def __getattr__(name: str):
    if name == "FamilyFit":
        from nnip_scaling.scaling.analysis import RunAnalysis

        return RunAnalysis
    if name in _STUDY_NAMES:
        import nnip_scaling.study as study

        return getattr(study, _STUDY_NAMES[name])
    raise AttributeError(f"module 'nnip_scaling.train' has no attribute {name!r}")
