r"""Options of :func:`~nnip_scaling.train.train`: :class:`TrainConfig` and its validation.

A config is plain data (saved in every checkpoint); :func:`make_config` merges ``train(**options)`` over
a config, and :func:`check_resumable` says which options may change when a run is resumed (the budget
only).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnip_scaling.models.base import Potential
from nnip_scaling.models.build import mup_learning_rate
from nnip_scaling.train.loss import check_weights
from nnip_scaling.train.mup import LR_RULES, parameter_groups

__all__ = ["TrainConfig", "make_config", "check_resumable"]


def _check_int(name: str, v: Any, *, minimum: int, allow_none: bool = False) -> int | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int{' or None' if allow_none else ''}, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return int(v)


def _check_float(name: str, v: Any, *, low: float, allow_none: bool = False, low_open: bool = True) -> float | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number{' or None' if allow_none else ''}, got {type(v).__name__}")
    ok = math.isfinite(v) and (v > low if low_open else v >= low)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>' if low_open else '>='} {low}, got {v!r}")
    return float(v)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Options of :func:`train` (all keyword-only; saved in checkpoints as plain data).

    Attributes:
        run_id: name of the run in the log (default ``"<kind>-w<width>-d<depth>-s<seed>"``).
        tokens: stop after this many atoms have been seen (``None``: no token budget).
        steps: stop after this many optimiser steps.
        minutes: stop after this much wall-clock time (summed over resumes).
        epochs: most passes over the training data (1: single-epoch streaming, the paper's regime).
        batch_size: molecules per optimiser step (the global batch under DDP); paper: 64 (128 for EGNN).
        lr: learning rate, or :math:`\\eta^*` at ``base_width`` when that is given (paper: 1e-3).
        base_width: width at which ``lr`` was tuned; enables the transfer of ``lr`` to other widths.
        lr_rule: how ``lr`` transfers from ``base_width``: ``"mup"`` (per-parameter μP rates,
            :mod:`nnip_scaling.train.mup`) or ``"global"`` (the paper's ``lr * base_width / width`` for every
            parameter). Without ``base_width`` both give ``lr`` to every parameter.
        betas: AdamW :math:`(\\beta_1, \\beta_2)`.
        weight_decay: decoupled weight decay.
        warmup_steps: linear learning-rate warm-up of the schedule-free optimiser.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping).
        energy_weight, force_weight: :math:`\\lambda_e, \\lambda_f` of eq. (1) (paper: equal).
        augment: rotate every molecule of every training batch by its own Haar-random rotation.
        symmetry_weight: :math:`\\lambda` of the symmetry loss (eq. 2, section 4.4; paper: 1); 0 = off.
        symmetry_rotations: :math:`M` of the symmetry loss (paper: 5).
        eval_every: evaluate, log and checkpoint every this many steps (and at the end).
        val_batch_size: molecules per validation batch.
        seed: the one seed of the data order, augmentation and symmetry-loss rotations.
    """

    run_id: str | None = None
    tokens: int | None = None
    steps: int | None = None
    minutes: float | None = None
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    base_width: int | None = None
    lr_rule: str = "mup"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float | None = 10.0
    energy_weight: float = 1.0
    force_weight: float = 1.0
    augment: bool = False
    symmetry_weight: float = 0.0
    symmetry_rotations: int = 5
    eval_every: int = 100
    val_batch_size: int = 64
    seed: int = 0

    #: Fields that may change when a run is resumed (the budget); every other field must match.
    BUDGET_FIELDS = ("tokens", "steps", "minutes", "epochs")

    def __post_init__(self) -> None:
        if self.run_id is not None and (not isinstance(self.run_id, str) or not self.run_id.strip()
                                        or any(c in self.run_id for c in "/\\,\n\"")):
            raise ValueError("run_id must be a non-empty string without / \\ , quotes or newlines, "
                             f"got {self.run_id!r}")
        _check_int("tokens", self.tokens, minimum=1, allow_none=True)
        _check_int("steps", self.steps, minimum=1, allow_none=True)
        _check_float("minutes", self.minutes, low=0.0, allow_none=True)
        _check_int("epochs", self.epochs, minimum=1)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_float("lr", self.lr, low=0.0)
        _check_int("base_width", self.base_width, minimum=1, allow_none=True)
        if self.lr_rule not in LR_RULES:
            raise ValueError(f"lr_rule must be one of {list(LR_RULES)}, got {self.lr_rule!r}")
        betas = tuple(self.betas) if isinstance(self.betas, (list, tuple)) else self.betas
        if not (isinstance(betas, tuple) and len(betas) == 2
                and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))
        _check_float("weight_decay", self.weight_decay, low=0.0, low_open=False)
        _check_int("warmup_steps", self.warmup_steps, minimum=0)
        _check_float("grad_clip", self.grad_clip, low=0.0, allow_none=True)
        check_weights(self.energy_weight, self.force_weight)
        if not isinstance(self.augment, bool):
            raise TypeError(f"augment must be a bool, got {type(self.augment).__name__}")
        _check_float("symmetry_weight", self.symmetry_weight, low=0.0, low_open=False)
        _check_int("symmetry_rotations", self.symmetry_rotations, minimum=1)
        _check_int("eval_every", self.eval_every, minimum=1)
        _check_int("val_batch_size", self.val_batch_size, minimum=1)
        _check_int("seed", self.seed, minimum=0)
        for name in ("tokens", "steps", "epochs", "base_width", "warmup_steps", "symmetry_rotations",
                     "eval_every", "val_batch_size", "seed", "batch_size"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, int(v))
        for name in ("minutes", "lr", "weight_decay", "grad_clip", "energy_weight", "force_weight",
                     "symmetry_weight"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, float(v))

    def learning_rate(self, width: int) -> float:
        """Learning rate :math:`\\eta^* w_\\text{base}/w` for a model of ``width`` (``lr`` without
        ``base_width``): every parameter's rate under ``lr_rule="global"``, the hidden weights' under ``"mup"``."""
        if self.base_width is None:
            return self.lr
        return mup_learning_rate(self.lr, self.base_width, width)

    def param_groups(self, model: Potential) -> list[dict[str, Any]]:
        """Optimiser parameter groups of ``model`` with their learning rates
        (:func:`~nnip_scaling.train.mup.parameter_groups`)."""
        return parameter_groups(model, self.lr, lr_rule=self.lr_rule, base_width=self.base_width)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (lists for tuples), for checkpoints and TOML round trips."""
        d = dataclasses.asdict(self)
        d["betas"] = list(d["betas"])
        return d


def make_config(config: TrainConfig | None, options: Mapping[str, Any]) -> TrainConfig:
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"train() got unknown option(s) {unknown}; valid options: {sorted(names)}")
    base = config if config is not None else TrainConfig()
    return dataclasses.replace(base, **options) if options else base


def check_resumable(saved: Mapping[str, Any], cfg: TrainConfig, path: Path) -> None:
    saved = {"lr_rule": "global", **saved}  # checkpoints from before lr_rule existed used the global rule
    now = cfg.as_dict()
    diff = sorted(k for k in now if k not in TrainConfig.BUDGET_FIELDS and saved.get(k) != now[k])
    if diff:
        detail = ", ".join(f"{k}: saved {saved.get(k)!r} vs now {now[k]!r}" for k in diff)
        raise ValueError(f"cannot resume {path}: the training options differ from the checkpoint's ({detail}); "
                         "only the budget (tokens, steps, minutes, epochs) may change on resume")
