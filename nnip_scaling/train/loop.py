r"""The training loop of the paper (sections 3.2-3.3, 4.4-4.5, appendix D).

:func:`train` minimises the loss of eq. (1) (optionally plus :math:`\lambda` times the symmetry loss of
eq. 2) with schedule-free AdamW (Defazio et al. 2024; the ``schedulefree`` package, extra ``train``), so
that one run traces a whole learning curve without a decay schedule (section 3.2). Every
``eval_every`` steps it evaluates the *averaged* weights :math:`x` of the optimiser
(``optimizer.eval()``) on the validation set and appends a row to the run log (the format of
:mod:`nnip_scaling.scaling.runs`, readable by :func:`~nnip_scaling.scaling.load_runs`):

==============  ======================================================================================
run_id          the run's name
n_params        :math:`N`, trainable parameters
tokens          :math:`D`, atoms seen so far (every pass over a repeated molecule counts)
flops           :math:`C = 3\kappa N D` (eq. 3), :math:`\kappa` from
                :func:`~nnip_scaling.flops.estimate_kappa` for this model; multiplied by
                :math:`1 + M` when the symmetry loss adds :math:`M` rotated passes (section 4.4)
hours           wall-clock hours so far (training, evaluation and checkpoints, summed over resumes)
loss            validation loss, eq. (1), normalised units (appendix D)
kind, width,    the model's family and size
depth
step, epoch     optimiser steps taken; passes over the training data (fractional)
flops_measured  the counted FLOPs of one training step (forward + backward of the objective,
                :func:`~nnip_scaling.flops.count_flops`) per atom of that batch, times ``tokens``
energy_loss,    the two terms of eq. (1) on the validation set (they add up to ``loss``)
force_loss
train_loss      the objective on the last training batch (before the step)
lr              :math:`\eta^* w_\text{base}/w`: the rate of every parameter under ``lr_rule="global"``,
                of the hidden (matrix-like) weights under ``lr_rule="mup"``
==============  ======================================================================================

Data: by default a **single epoch** (paper section 3.1): the training molecules are visited once in a
random order (from ``seed``) and the run stops when the budget (``tokens``, ``steps`` or ``minutes``,
whichever comes first) is reached or the data run out. ``epochs=k`` allows up to ``k`` passes, each in
a fresh order; ``augment=True`` then applies an independent Haar-random rotation to every molecule of
every batch (section 4.5). Energies and forces are normalised by a
:class:`~nnip_scaling.data.Normaliser` fitted on the training set (appendix D) unless one is given.

Learning rate: ``lr`` is used as is for every parameter, or, with ``base_width``, it is :math:`\eta^*` tuned
at the base width and transferred to the model's width by ``lr_rule`` (:mod:`nnip_scaling.train.mup`):
``"mup"`` (default) gives each parameter its own rate, :math:`\eta^*\,\text{fan\_in}(w_\text{base})/
\text{fan\_in}(w)` for weights whose fan-in grows with the width and :math:`\eta^*` for embeddings, biases,
gains and width-independent parts (μP for Adam, Tensor Programs V table 3); ``"global"`` is the paper's
rule :math:`\eta(w) = \eta^* w_\text{base} / w` for every parameter (section 3.3,
:func:`~nnip_scaling.models.mup_learning_rate`), kept to reproduce the paper's setting
(docs/training.md, "μP", shows why wider models lose under it).

Checkpoints (``out_dir``): written atomically at every evaluation (and at the end), loaded with
``torch.load(weights_only=True)``; see :mod:`nnip_scaling.train.checkpoint`. With ``resume=True`` a run
continues from its last checkpoint exactly: on CPU with a fixed seed, an interrupted-and-resumed run
writes the same log rows (all columns but ``hours``) as an uninterrupted one. This holds because every
random choice is a pure function of ``(seed, epoch)`` or ``(seed, step)`` and the checkpoint is taken in
the optimiser's eval mode, where the uninterrupted run also passes. (Two limits: ``hours`` is wall clock;
and a run that already *ended* with an off-schedule final evaluation, then resumed with a larger budget,
continues correctly but not bit-identically to one longer run, because of that extra evaluation.)

Faults: a non-finite training loss or gradient norm stops the run with :class:`NonFiniteLossError`
naming the step, before the optimiser touches the weights; the last checkpoint (written only after a
finite evaluation) is kept. An unwritable ``out_dir`` fails before any training.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from nnip_scaling.data import MoleculeDataset, Normaliser, iter_batches
from nnip_scaling.graph import AtomicGraph
from nnip_scaling.models.augment import rotate
from nnip_scaling.models.base import Potential
from nnip_scaling.models.build import mup_learning_rate
from nnip_scaling.scaling.runs import RunLog, format_number
from nnip_scaling.train.checkpoint import FORMAT, atomic_save, atomic_write_text, load_checkpoint
from nnip_scaling.train.distributed import DistInfo, dist_info
from nnip_scaling.train.loss import check_weights, loss_terms
from nnip_scaling.train.mup import LR_RULES, parameter_groups
from nnip_scaling.train.symmetry import symmetry_terms

__all__ = [
    "TrainConfig",
    "EvalRow",
    "EvalResult",
    "PhaseTimes",
    "TrainResult",
    "NonFiniteLossError",
    "train",
    "evaluate",
    "LOG_NAME",
    "CHECKPOINT_NAME",
]

LOG_NAME = "log.csv"
CHECKPOINT_NAME = "checkpoint.pt"

# Independent random streams, each a pure function of (seed, stream, index).
_STREAM_ORDER = 1
_STREAM_AUGMENT = 2
_STREAM_SYMMETRY = 3


def _seed_of(seed: int, stream: int, index: int) -> int:
    """A 63-bit seed, a pure function of ``(seed, stream, index)`` (numpy's SeedSequence hashing)."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _generator(seed: int, stream: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(_seed_of(seed, stream, index))


class NonFiniteLossError(FloatingPointError):
    """The loss (or gradient norm, or validation loss) became NaN/inf; the run was stopped.

    Attributes:
        step: the optimiser step that produced it (1-based: the step that would have been taken).
        checkpoint_step: step of the last good checkpoint kept on disk (``None`` if none was written).
    """

    def __init__(self, message: str, *, step: int, checkpoint_step: int | None) -> None:
        super().__init__(message)
        self.step = step
        self.checkpoint_step = checkpoint_step


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
        """Learning rate :math:`\\eta^* w_\\text{base}/w` for a model of ``width`` (``lr`` without ``base_width``): every
        parameter's rate under ``lr_rule="global"``, the hidden weights' under ``"mup"``."""
        if self.base_width is None:
            return self.lr
        return mup_learning_rate(self.lr, self.base_width, width)

    def param_groups(self, model: Potential) -> list[dict[str, Any]]:
        """Optimiser parameter groups of ``model`` with their learning rates (:func:`~nnip_scaling.train.mup.parameter_groups`)."""
        return parameter_groups(model, self.lr, lr_rule=self.lr_rule, base_width=self.base_width)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (lists for tuples), for checkpoints and TOML round trips."""
        d = dataclasses.asdict(self)
        d["betas"] = list(d["betas"])
        return d


@dataclass(frozen=True)
class EvalRow:
    """One learning-curve point (one row of the run log; see the module docstring for the columns)."""

    step: int
    epoch: float
    tokens: int
    flops: float
    flops_measured: float
    hours: float
    loss: float
    energy_loss: float
    force_loss: float
    train_loss: float
    lr: float


@dataclass(frozen=True)
class EvalResult:
    """Validation loss of eq. (1), averaged over molecules (normalised units).

    Attributes:
        loss: ``energy_loss + force_loss``.
        energy_loss, force_loss: the two weighted terms of eq. (1).
        n_molecules: molecules evaluated.
    """

    loss: float
    energy_loss: float
    force_loss: float
    n_molecules: int


@dataclass(frozen=True)
class PhaseTimes:
    """Seconds spent in each phase of this call of :func:`train` (wall clock, this process).

    ``data``: batch assembly, normalisation, neighbour lists, augmentation; ``forward``: model and loss;
    ``backward``: gradients; ``optimizer``: clipping, the optimiser step (and the cross-rank loss sum);
    ``evaluation`` and ``checkpoint``: the periodic validation and writes. On a GPU the phases are not
    synchronised, so the split reflects kernel launches more than kernel time.
    """

    data: float = 0.0
    forward: float = 0.0
    backward: float = 0.0
    optimizer: float = 0.0
    evaluation: float = 0.0
    checkpoint: float = 0.0

    @property
    def total(self) -> float:
        return self.data + self.forward + self.backward + self.optimizer + self.evaluation + self.checkpoint


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        run_id, kind, width, depth, n_params: the run and its model.
        kappa: forward FLOPs per parameter per atom used for ``flops`` (eq. 3).
        flops_per_atom_measured: counted FLOPs of one training step per atom.
        lr: :math:`\\eta^* w_\\text{base}/w` (see ``TrainConfig.learning_rate``).
        lr_groups: ``(role, learning rate, parameters)`` of each optimiser group (:mod:`nnip_scaling.train.mup`).
        steps, tokens, epoch, hours: progress at the end.
        stop_reason: ``"tokens"``, ``"steps"``, ``"minutes"`` or ``"data"`` (the epochs ran out).
        rows: the learning curve (all rows, including those from before a resume).
        timings: :class:`PhaseTimes` of this call.
        log_path, checkpoint_path: files written (``None`` without ``out_dir``).
    """

    run_id: str
    kind: str
    width: int
    depth: int
    n_params: int
    kappa: float
    flops_per_atom_measured: float
    lr: float
    steps: int
    tokens: int
    epoch: float
    hours: float
    stop_reason: str
    rows: tuple[EvalRow, ...]
    timings: PhaseTimes = field(default_factory=PhaseTimes)
    log_path: Path | None = None
    checkpoint_path: Path | None = None
    lr_groups: tuple[tuple[str, float, int], ...] = ()

    @property
    def final_loss(self) -> float:
        """Validation loss of the last row (NaN if nothing was logged)."""
        return self.rows[-1].loss if self.rows else math.nan

    def run_log(self) -> RunLog:
        """The learning curve as a :class:`~nnip_scaling.scaling.RunLog`."""
        return _run_log(self.run_id, self.kind, self.width, self.depth, self.n_params, self.rows)


_EXTRA_COLUMNS = ("kind", "width", "depth", "step", "epoch", "flops_measured", "energy_loss", "force_loss",
                  "train_loss", "lr")


def _run_log(run_id: str, kind: str, width: int, depth: int, n_params: int, rows: tuple[EvalRow, ...]) -> RunLog:
    if not rows:
        raise ValueError(f"run {run_id!r} has no logged rows yet")
    n = len(rows)
    col = {f.name: np.array([getattr(r, f.name) for r in rows]) for f in dataclasses.fields(EvalRow)}
    extra: dict[str, Any] = {
        "kind": np.array([kind] * n), "width": np.full(n, width), "depth": np.full(n, depth),
    }
    for name in _EXTRA_COLUMNS[3:]:
        extra[name] = col[name]
    return RunLog(run_id=np.array([run_id] * n), n_params=np.full(n, float(n_params)), tokens=col["tokens"],
                  flops=col["flops"], loss=col["loss"], hours=col["hours"], extra=extra)


def _csv_text(log: RunLog) -> str:
    """The run log as CSV text, in :func:`~nnip_scaling.scaling.save_runs`'s format."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = log.columns
    w.writerow(names)
    cols = [log.column(c) for c in names]
    for i in range(len(log)):
        row = []
        for c in cols:
            v = c[i].item() if isinstance(c[i], np.generic) else c[i]
            if isinstance(v, float):
                row.append(str(int(v)) if v.is_integer() and abs(v) < 2**53 else format_number(v))
            else:
                row.append(v)
        w.writerow(row)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------------------
# evaluation


def _param(model: torch.nn.Module) -> Tensor:
    for p in model.parameters():
        if p.is_floating_point():
            return p
    raise ValueError("model has no floating-point parameters")


@torch.no_grad()
def _eval_sums(model: Any, dataset: MoleculeDataset, normaliser: Normaliser, batch_size: int,
               weights: tuple[float, float], info: DistInfo, dtype: torch.dtype, device: torch.device) -> Tensor:
    """float64 ``[3]``: sums over this rank's molecules of (energy term, force term, 1)."""
    idx = np.arange(info.rank, len(dataset), info.world_size)
    sums = torch.zeros(3, dtype=torch.float64)
    if idx.size:
        for g in iter_batches(dataset.select(idx), batch_size, normaliser=normaliser, dtype=dtype, device=device):
            out = model(g)
            t = loss_terms(out.energy, out.forces, g, energy_weight=weights[0], force_weight=weights[1])
            sums += torch.stack([t.energy.sum().double().cpu(), t.force.sum().double().cpu(),
                                 torch.tensor(float(g.n_graphs), dtype=torch.float64)])
    if info.world_size > 1:
        import torch.distributed as dist

        s = sums.to(info.device)
        dist.all_reduce(s)
        sums = s.cpu()
    return sums


def evaluate(
    model: Any,
    dataset: MoleculeDataset,
    *,
    normaliser: Normaliser,
    batch_size: int = 64,
    energy_weight: float = 1.0,
    force_weight: float = 1.0,
) -> EvalResult:
    """The loss of eq. (1) of ``model`` on ``dataset``, averaged over molecules (no gradients).

    Args:
        model: a potential (or :class:`~nnip_scaling.train.GroupAveraged`); it is not switched to eval
            mode here (do that, and ``optimizer.eval()`` for schedule-free weights, before).
        dataset: labelled molecules.
        normaliser: the energy referencing of the training run (appendix D).
        batch_size: molecules per batch.
        energy_weight, force_weight: :math:`\\lambda_e, \\lambda_f`.

    Returns:
        :class:`EvalResult`.
    """
    if not isinstance(dataset, MoleculeDataset):
        raise TypeError(f"dataset must be a MoleculeDataset, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    if not isinstance(normaliser, Normaliser):
        raise TypeError(f"normaliser must be a Normaliser, got {type(normaliser).__name__}")
    _check_int("batch_size", batch_size, minimum=1)
    weights = check_weights(energy_weight, force_weight)
    p = _param(model)
    s = _eval_sums(model, dataset, normaliser, batch_size, weights, DistInfo(0, 1, 0, p.device), p.dtype, p.device)
    n = float(s[2])
    return EvalResult(loss=float((s[0] + s[1]) / n), energy_loss=float(s[0] / n), force_loss=float(s[1] / n),
                      n_molecules=int(n))


# ----------------------------------------------------------------------------------------------------------
# output directory


def _prepare_out_dir(out_dir: Path, info: DistInfo) -> None:
    """Create ``out_dir`` and prove it is writable (before any training)."""
    if info.is_main:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            probe = out_dir / f".write-test-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as err:
            raise PermissionError(f"out_dir {str(out_dir)!r} is not a writable directory: "
                                  f"{err.strerror or err}") from err
    if info.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def _make_config(config: TrainConfig | None, options: Mapping[str, Any]) -> TrainConfig:
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"train() got unknown option(s) {unknown}; valid options: {sorted(names)}")
    base = config if config is not None else TrainConfig()
    return dataclasses.replace(base, **options) if options else base


def _compatible(saved: Mapping[str, Any], cfg: TrainConfig, path: Path) -> None:
    saved = {"lr_rule": "global", **saved}  # checkpoints from before lr_rule existed used the global rule
    now = cfg.as_dict()
    diff = sorted(k for k in now if k not in TrainConfig.BUDGET_FIELDS and saved.get(k) != now[k])
    if diff:
        detail = ", ".join(f"{k}: saved {saved.get(k)!r} vs now {now[k]!r}" for k in diff)
        raise ValueError(f"cannot resume {path}: the training options differ from the checkpoint's ({detail}); "
                         "only the budget (tokens, steps, minutes, epochs) may change on resume")


# ----------------------------------------------------------------------------------------------------------
# the loop


@dataclass
class _Progress:
    step: int = 0
    tokens: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    hours: float = 0.0
    stop_reason: str = ""


def _epoch_plan(n_configs: int, n_atoms: np.ndarray, batch_size: int, seed: int, epoch: int,
                info: DistInfo) -> tuple[np.ndarray, np.ndarray]:
    """This rank's configuration indices ``[n_batches, batch_size / world]`` and the global atoms per batch."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_ORDER, epoch]))
    order = rng.permutation(n_configs)
    nb = n_configs // batch_size
    glob = order[: nb * batch_size].reshape(nb, batch_size)
    return glob[:, info.rank :: info.world_size], n_atoms[glob].sum(axis=1)


def _progress_bar(enabled: bool | None, total: int | None, unit: str, desc: str) -> Any:
    if enabled is None:
        enabled = bool(getattr(sys.stderr, "isatty", lambda: False)())
        if enabled:
            try:
                import tqdm  # noqa: F401
            except ImportError:
                enabled = False
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as err:
        raise ImportError("progress=True needs tqdm: pip install 'nnip_scaling[train]'") from err
    return tqdm(total=total, unit=unit, desc=desc, unit_scale=True, dynamic_ncols=True, leave=False)


def train(
    model: Potential,
    train_data: MoleculeDataset,
    val_data: MoleculeDataset,
    *,
    config: TrainConfig | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    normaliser: Normaliser | None = None,
    kappa: float | None = None,
    progress: bool | None = None,
    **options: Any,
) -> TrainResult:
    r"""Train ``model`` on ``train_data`` with the paper's recipe, logging its learning curve on ``val_data``.

    Args:
        model: a :class:`~nnip_scaling.models.Potential` (``build_model(...)``), on the device and in the
            dtype to train in (float32 or float64); trained in place. On return it holds the optimiser's
            averaged weights (the ones evaluated) and is in eval mode.
        train_data: labelled training molecules.
        val_data: labelled validation molecules (every row of the log evaluates all of them).
        config: a :class:`TrainConfig`; keyword ``options`` (any :class:`TrainConfig` field, e.g.
            ``tokens=``, ``steps=``, ``minutes=``, ``batch_size=``, ``lr=``) override its fields.
        out_dir: directory for ``log.csv`` and ``checkpoint.pt`` (created; ``None``: keep nothing on disk).
        resume: continue from ``out_dir``'s checkpoint if there is one. Without it, an ``out_dir``
            holding a checkpoint is an error (runs are never silently overwritten).
        normaliser: energy referencing (appendix D); default: fitted on ``train_data`` (a resumed run
            uses the checkpoint's).
        kappa: :math:`\kappa` for ``flops = 3 kappa N D``; default: measured by
            :func:`~nnip_scaling.flops.estimate_kappa` on this model (probe batches of 8 and 32
            built-in molecules).
        progress: show a tqdm progress bar (``None``: only when stderr is a terminal and tqdm is
            installed).

    Returns:
        :class:`TrainResult`.

    Raises:
        TypeError / ValueError: bad arguments (named), a batch larger than the data, options that differ
            from the checkpoint's on resume.
        FileExistsError: ``out_dir`` holds a run and ``resume`` is False.
        PermissionError: ``out_dir`` cannot be written (raised before training).
        NonFiniteLossError: the loss became NaN/inf (the message names the step; the last good
            checkpoint is kept).
        ImportError: ``schedulefree`` is missing (``pip install 'nnip_scaling[train]'``).

    Shapes:
        data of any molecule sizes; batches of ``batch_size`` molecules (``drop_last``: every step sees a
        full batch).
    """
    cfg = _make_config(config, options)
    if not isinstance(model, Potential):
        raise TypeError(f"model must be a Potential (see nnip_scaling.models.build_model), got {type(model).__name__}")
    for name, ds in (("train_data", train_data), ("val_data", val_data)):
        if not isinstance(ds, MoleculeDataset):
            raise TypeError(f"{name} must be a MoleculeDataset, got {type(ds).__name__}")
        if len(ds) == 0:
            raise ValueError(f"{name} is empty")
    if not isinstance(resume, bool):
        raise TypeError(f"resume must be a bool, got {type(resume).__name__}")
    if normaliser is not None and not isinstance(normaliser, Normaliser):
        raise TypeError(f"normaliser must be a Normaliser or None, got {type(normaliser).__name__}")
    if kappa is not None:
        _check_float("kappa", kappa, low=0.0)
    info = dist_info()
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the number of processes "
                         f"({info.world_size}) under distributed training")
    if cfg.batch_size > len(train_data):
        raise ValueError(f"batch_size={cfg.batch_size} exceeds the {len(train_data)} training configurations")
    try:
        import schedulefree
    except ImportError as err:
        raise ImportError("train() needs the schedulefree optimiser: pip install 'nnip_scaling[train]'") from err

    mcfg = model.config
    run_id = cfg.run_id or f"{mcfg.kind}-w{mcfg.width}-d{mcfg.depth}-s{cfg.seed}"
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / CHECKPOINT_NAME if out is not None else None
    log_path = out / LOG_NAME if out is not None else None
    saved: dict[str, Any] | None = None
    if out is not None:
        _prepare_out_dir(out, info)
        assert ckpt_path is not None
        if ckpt_path.exists():
            if not resume:
                raise FileExistsError(f"{out} already holds a run ({CHECKPOINT_NAME}); pass resume=True to "
                                      "continue it, or choose another out_dir")
            saved = load_checkpoint(ckpt_path)
            if saved["model_config"] != dataclasses.asdict(mcfg):
                raise ValueError(f"cannot resume {ckpt_path}: it was written for model config "
                                 f"{saved['model_config']}, not {dataclasses.asdict(mcfg)}")
            _compatible(saved["train_config"], cfg, ckpt_path)
            if saved["run"]["run_id"] != run_id:
                raise ValueError(f"cannot resume {ckpt_path}: it holds run {saved['run']['run_id']!r}, not {run_id!r}")

    p0 = _param(model)
    dtype, device = p0.dtype, p0.device
    if saved is not None:
        normaliser = Normaliser.from_state_dict(saved["normaliser"])
    elif normaliser is None:
        normaliser = Normaliser.fit(train_data)
    lr = cfg.learning_rate(mcfg.width)
    groups = cfg.param_groups(model)
    lr_groups = tuple((g["role"], g["lr"], sum(p.numel() for p in g["params"])) for g in groups)
    optimizer = schedulefree.AdamWScheduleFree(groups, lr=lr, betas=cfg.betas,
                                               weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps)
    prog = _Progress()
    rows: list[EvalRow] = []
    if saved is not None:
        model.load_state_dict(saved["model_state"])
        optimizer.load_state_dict(saved["optimizer_state"])
        sp = saved["progress"]
        prog = _Progress(step=int(sp["step"]), tokens=int(sp["tokens"]), epoch=int(sp["epoch"]),
                         batch_in_epoch=int(sp["batch_in_epoch"]), hours=float(sp["hours"]))
        rows = [EvalRow(**r) for r in saved["rows"]]
        kappa_used = float(saved["run"]["kappa"])
        fpa_measured = float(saved["run"]["flops_per_atom_measured"])
    else:
        if kappa is None:
            from nnip_scaling.flops import estimate_kappa

            kappa_used = float(estimate_kappa(model, batch_sizes=(8, 32)).kappa)
        else:
            kappa_used = float(kappa)
        fpa_measured = math.nan  # measured on the first batch below
    n_params = model.n_parameters
    sym_on = cfg.symmetry_weight > 0
    flops_factor = 3.0 * kappa_used * n_params * (1 + (cfg.symmetry_rotations if sym_on else 0))

    net: Any = model
    if info.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      find_unused_parameters=True)
    weights = (cfg.energy_weight, cfg.force_weight)
    n_atoms_all = np.asarray(train_data.n_atoms)
    local_bs = cfg.batch_size // info.world_size
    n_batches = len(train_data) // cfg.batch_size
    times = dict.fromkeys(("data", "forward", "backward", "optimizer", "evaluation", "checkpoint"), 0.0)
    hours_at_start = prog.hours
    t_start = time.perf_counter()

    def elapsed_hours() -> float:
        return hours_at_start + (time.perf_counter() - t_start) / 3600.0

    def state_dict(stop_reason: str) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model_config": dataclasses.asdict(mcfg),
            "model_state": model.state_dict(),
            "optimizer_state": optimizer.state_dict(),
            "normaliser": normaliser.state_dict(),
            "train_config": cfg.as_dict(),
            "run": {"run_id": run_id, "kind": mcfg.kind, "width": mcfg.width, "depth": mcfg.depth,
                    "n_params": n_params, "kappa": kappa_used, "flops_per_atom_measured": fpa_measured,
                    "lr": lr},
            "progress": {"step": prog.step, "tokens": prog.tokens, "epoch": prog.epoch,
                         "batch_in_epoch": prog.batch_in_epoch, "hours": prog.hours, "stop_reason": stop_reason},
            "rows": [dataclasses.asdict(r) for r in rows],
        }

    last_ckpt_step: int | None = rows[-1].step if rows else None
    last_train_loss = math.nan

    def evaluate_and_save(stop_reason: str) -> None:
        nonlocal last_ckpt_step
        t0 = time.perf_counter()
        optimizer.eval()
        model.eval()
        s = _eval_sums(model, val_data, normaliser, cfg.val_batch_size, weights, info, dtype, device)
        n = float(s[2])
        e_loss, f_loss = float(s[0] / n), float(s[1] / n)
        loss = e_loss + f_loss
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"run {run_id!r}: the validation loss is {loss} after step {prog.step}; training stopped. "
                + _kept(ckpt_path, last_ckpt_step), step=prog.step, checkpoint_step=last_ckpt_step)
        prog.hours = elapsed_hours()
        rows.append(EvalRow(step=prog.step, epoch=prog.epoch + prog.batch_in_epoch / n_batches, tokens=prog.tokens,
                            flops=flops_factor * prog.tokens, flops_measured=fpa_measured * prog.tokens,
                            hours=prog.hours, loss=loss, energy_loss=e_loss, force_loss=f_loss,
                            train_loss=last_train_loss, lr=lr))
        t1 = time.perf_counter()
        times["evaluation"] += t1 - t0
        if info.is_main and out is not None:
            assert ckpt_path is not None and log_path is not None
            atomic_save(state_dict(stop_reason), ckpt_path)
            atomic_write_text(_csv_text(_run_log(run_id, mcfg.kind, mcfg.width, mcfg.depth, n_params, tuple(rows))),
                              log_path)
        last_ckpt_step = prog.step
        if info.world_size > 1:
            import torch.distributed as dist

            dist.barrier()
        times["checkpoint"] += time.perf_counter() - t1
        if not stop_reason:  # the run goes on: back to the training weights y (the end keeps x)
            optimizer.train()
            model.train()

    if info.is_main and out is not None and saved is not None:
        assert log_path is not None
        for stale in out.glob(f".{CHECKPOINT_NAME}.*.tmp"):  # left by a write that was killed
            stale.unlink(missing_ok=True)
        for stale in out.glob(f".{LOG_NAME}.*.tmp"):
            stale.unlink(missing_ok=True)
        # The checkpoint is the truth: drop log rows written after it by a run that was then killed.
        if rows:
            atomic_write_text(_csv_text(_run_log(run_id, mcfg.kind, mcfg.width, mcfg.depth, n_params, tuple(rows))),
                              log_path)
        elif log_path.exists():
            log_path.unlink()

    def budget_reason() -> str:
        if cfg.tokens is not None and prog.tokens >= cfg.tokens:
            return "tokens"
        if cfg.steps is not None and prog.step >= cfg.steps:
            return "steps"
        if prog.epoch >= cfg.epochs:
            return "data"
        if cfg.minutes is not None:
            out_of_time = elapsed_hours() * 60.0 >= cfg.minutes
            if info.world_size > 1:  # clocks differ between ranks: rank 0 decides for all
                import torch.distributed as dist

                flag = torch.tensor([1.0 if out_of_time else 0.0], device=info.device)
                dist.broadcast(flag, src=0)
                out_of_time = bool(flag.item() > 0)
            if out_of_time:
                return "minutes"
        return ""

    total = cfg.tokens if cfg.tokens is not None else (cfg.steps if cfg.steps is not None else None)
    bar = _progress_bar(progress, total, "atom" if cfg.tokens is not None else "step", run_id) if info.is_main else None
    if bar is not None:
        bar.update(prog.tokens if cfg.tokens is not None else prog.step)

    optimizer.train()
    model.train()
    plan: tuple[np.ndarray, np.ndarray] | None = None
    batches: Any = None
    stop = budget_reason()
    try:
        while not stop:
            t0 = time.perf_counter()
            if batches is None:
                plan = _epoch_plan(len(train_data), n_atoms_all, cfg.batch_size, cfg.seed, prog.epoch, info)
                rest = plan[0][prog.batch_in_epoch:].reshape(-1)
                batches = iter_batches(train_data.select(rest), local_bs, normaliser=normaliser, dtype=dtype,
                                       device=device)
            assert plan is not None
            g = next(batches)
            g = g.with_edges(mcfg.cutoff, mcfg.max_neighbors)
            if cfg.augment:
                rot = _rotations(cfg.seed, prog.step, cfg.batch_size)[info.rank :: info.world_size]
                g = rotate(g, rot)
            batch_tokens = int(plan[1][prog.batch_in_epoch])
            t1 = time.perf_counter()
            if math.isnan(fpa_measured):
                fpa_measured = _measure_step_flops(model, g, cfg, weights) / max(g.n_atoms, 1)
                if info.world_size > 1:
                    fpa_measured = _sum_over_ranks(fpa_measured * g.n_atoms, info) / batch_tokens
                t1 = time.perf_counter()
            out_ = net(g)
            terms = loss_terms(out_.energy, out_.forces, g, energy_weight=weights[0], force_weight=weights[1])
            local_sum = terms.total.sum()
            objective = local_sum
            if sym_on:
                sym_gen = _generator(cfg.seed, _STREAM_SYMMETRY, prog.step * info.world_size + info.rank)
                sym = symmetry_terms(model, g, cfg.symmetry_rotations, generator=sym_gen,
                                     energy_weight=weights[0], force_weight=weights[1])
                objective = objective + cfg.symmetry_weight * sym.total.sum()
            scaled = objective * (info.world_size / cfg.batch_size)
            t2 = time.perf_counter()
            scaled.backward()
            t3 = time.perf_counter()
            obj_value = objective.detach().double().cpu()
            if info.world_size > 1:
                obj_value = torch.tensor(_sum_over_ranks(float(obj_value), info), dtype=torch.float64)
            train_loss = float(obj_value) / cfg.batch_size
            clip = cfg.grad_clip if cfg.grad_clip is not None else math.inf
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
            if not (math.isfinite(train_loss) and math.isfinite(grad_norm)):
                what = f"training loss is {train_loss}" if not math.isfinite(train_loss) else \
                    f"gradient norm is {grad_norm}"
                raise NonFiniteLossError(
                    f"run {run_id!r}: the {what} at step {prog.step + 1} (tokens seen {prog.tokens}); training "
                    "stopped before the update. " + _kept(ckpt_path, last_ckpt_step),
                    step=prog.step + 1, checkpoint_step=last_ckpt_step)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            t4 = time.perf_counter()
            times["data"] += t1 - t0
            times["forward"] += t2 - t1
            times["backward"] += t3 - t2
            times["optimizer"] += t4 - t3
            last_train_loss = train_loss
            prog.step += 1
            prog.tokens += batch_tokens
            prog.batch_in_epoch += 1
            if prog.batch_in_epoch >= n_batches:
                prog.epoch += 1
                prog.batch_in_epoch = 0
                batches = None
            if bar is not None:
                bar.update(batch_tokens if cfg.tokens is not None else 1)
                bar.set_postfix(loss=f"{train_loss:.4g}", refresh=False)
            stop = budget_reason()
            if prog.step % cfg.eval_every == 0 or stop:
                evaluate_and_save(stop)
        if not rows or rows[-1].step != prog.step:  # resumed a finished run or nothing ran yet
            if prog.step > 0:
                evaluate_and_save(stop)
    finally:
        if bar is not None:
            bar.close()
    optimizer.eval()
    model.eval()
    return TrainResult(
        run_id=run_id, kind=mcfg.kind, width=mcfg.width, depth=mcfg.depth, n_params=n_params, kappa=kappa_used,
        flops_per_atom_measured=fpa_measured, lr=lr, steps=prog.step, tokens=prog.tokens,
        epoch=prog.epoch + prog.batch_in_epoch / n_batches, hours=elapsed_hours(), stop_reason=stop,
        rows=tuple(rows), timings=PhaseTimes(**times), log_path=log_path, checkpoint_path=ckpt_path,
        lr_groups=lr_groups,
    )


def _kept(ckpt_path: Path | None, step: int | None) -> str:
    if ckpt_path is None:
        return "No checkpoint is kept (out_dir=None)."
    if step is None:
        return "No checkpoint had been written yet."
    return f"The last good checkpoint ({ckpt_path}, step {step}) is kept."


def _rotations(seed: int, step: int, n: int) -> Tensor:
    """Haar rotations ``[n, 3, 3]`` (float64) for the augmentation of step ``step`` (global batch)."""
    from nnip_scaling.geometry import random_rotation

    return random_rotation(n, generator=_generator(seed, _STREAM_AUGMENT, step), dtype=torch.float64)


def _sum_over_ranks(value: float, info: DistInfo) -> float:
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t.item())


def _measure_step_flops(model: Potential, graph: AtomicGraph, cfg: TrainConfig, weights: tuple[float, float]) -> float:
    """Counted FLOPs of forward + backward of the training objective on ``graph`` (one rank's share)."""
    from nnip_scaling.flops import count_flops

    def objective(g: AtomicGraph) -> Tensor:
        out = model(g)
        loss = loss_terms(out.energy, out.forces, g, energy_weight=weights[0], force_weight=weights[1]).total.mean()
        if cfg.symmetry_weight > 0:
            sym = symmetry_terms(model, g, cfg.symmetry_rotations, generator=torch.Generator().manual_seed(0),
                                 energy_weight=weights[0], force_weight=weights[1])
            loss = loss + cfg.symmetry_weight * sym.total.mean()
        return loss

    return float(count_flops(objective, graph, backward=True).total)
