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

How :func:`train` is organised (each step a function below, in this order):

1. *checks*: :func:`_check_arguments`, :func:`_check_batch_size`, the optimiser import;
2. *setup* (:func:`_setup`): output directory and checkpoint (:func:`_open_out_dir`), normaliser, the
   optimiser with its learning-rate groups (:class:`~nnip_scaling.train.config.TrainConfig.param_groups`),
   restored or fresh progress (:func:`_initial_progress`), everything collected in one :class:`_Run`;
3. *loop* (:func:`_loop`): next batch (:class:`_Batches`) -> :func:`_train_step` (forward, backward,
   clip, update) -> :func:`_advance` (counters) -> :func:`_budget_reason` -> on schedule
   :func:`_evaluate_and_save` (:func:`_evaluate_row`, then :func:`_save`: checkpoint and log);
4. *result* (:func:`_result`).

Options live in :mod:`nnip_scaling.train.config`, returned and logged records in
:mod:`nnip_scaling.train.results`, validation in :mod:`nnip_scaling.train.evaluate`, learning-rate groups
in :mod:`nnip_scaling.train.mup`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
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
from nnip_scaling.train.checkpoint import FORMAT, atomic_save, atomic_write_text, load_checkpoint
from nnip_scaling.train.config import TrainConfig, _check_float, check_resumable, make_config
from nnip_scaling.train.distributed import DistInfo, dist_info
from nnip_scaling.train.evaluate import eval_sums, evaluate, first_param
from nnip_scaling.train.loss import loss_terms
from nnip_scaling.train.results import EvalResult, EvalRow, PhaseTimes, TrainResult, csv_text, make_run_log
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
    cfg = make_config(config, options)
    _check_arguments(model, train_data, val_data, resume=resume, normaliser=normaliser, kappa=kappa)
    info = dist_info()
    _check_batch_size(cfg, len(train_data), info)
    optimizer_class = _schedule_free_adamw()
    run = _setup(model, train_data, val_data, cfg, info, optimizer_class, out_dir=out_dir, resume=resume,
                 normaliser=normaliser, kappa=kappa)
    bar = _open_progress_bar(run, progress)
    try:
        stop = _loop(run, bar)
    finally:
        if bar is not None:
            bar.close()
    run.optimizer.eval()
    run.model.eval()
    return _result(run, stop)


# --------------------------------------------------------------------------------------------- step 1: checks


def _check_arguments(model: Any, train_data: Any, val_data: Any, *, resume: Any, normaliser: Any,
                     kappa: Any) -> None:
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


def _check_batch_size(cfg: TrainConfig, n_train: int, info: DistInfo) -> None:
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the number of processes "
                         f"({info.world_size}) under distributed training")
    if cfg.batch_size > n_train:
        raise ValueError(f"batch_size={cfg.batch_size} exceeds the {n_train} training configurations")


def _schedule_free_adamw() -> type:
    try:
        import schedulefree
    except ImportError as err:
        raise ImportError("train() needs the schedulefree optimiser: pip install 'nnip_scaling[train]'") from err
    return schedulefree.AdamWScheduleFree


# ---------------------------------------------------------------------------------------------- step 2: setup


@dataclass(eq=False)
class _Run:
    """Everything one call of :func:`train` works with: fixed by :func:`_setup`, except the progress
    (``prog``, ``rows``, ``last_*``, ``fpa_measured``, ``times``), which the steps update."""

    cfg: TrainConfig
    info: DistInfo
    model: Potential
    net: Any  # the model, or its DistributedDataParallel wrapper
    optimizer: Any
    normaliser: Normaliser
    train_data: MoleculeDataset
    val_data: MoleculeDataset
    run_id: str
    out: Path | None
    ckpt_path: Path | None
    log_path: Path | None
    lr: float
    lr_groups: tuple[tuple[str, float, int], ...]
    kappa: float
    n_params: int
    flops_factor: float  # FLOPs per token: 3 kappa N (1 + M)
    prog: _Progress
    rows: list[EvalRow]
    fpa_measured: float  # NaN until measured on the first batch
    dtype: torch.dtype
    device: torch.device
    hours_at_start: float = 0.0
    t_start: float = 0.0
    last_ckpt_step: int | None = None
    last_train_loss: float = math.nan
    times: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("data", "forward", "backward", "optimizer", "evaluation",
                                               "checkpoint"), 0.0))

    @property
    def weights(self) -> tuple[float, float]:
        return self.cfg.energy_weight, self.cfg.force_weight

    @property
    def n_batches(self) -> int:
        """Optimiser steps per epoch (``drop_last``)."""
        return len(self.train_data) // self.cfg.batch_size

    def elapsed_hours(self) -> float:
        """Wall-clock hours of the run, summed over resumes."""
        return self.hours_at_start + (time.perf_counter() - self.t_start) / 3600.0


def _setup(model: Potential, train_data: MoleculeDataset, val_data: MoleculeDataset, cfg: TrainConfig,
           info: DistInfo, optimizer_class: type, *, out_dir: str | os.PathLike[str] | None, resume: bool,
           normaliser: Normaliser | None, kappa: float | None) -> _Run:
    """Open the output directory (and the checkpoint to resume), build the optimiser with its learning-rate
    groups, and restore the progress; a resumed run then discards files a killed run left behind."""
    mcfg = model.config
    run_id = cfg.run_id or f"{mcfg.kind}-w{mcfg.width}-d{mcfg.depth}-s{cfg.seed}"
    out = Path(out_dir) if out_dir is not None else None
    saved = _open_out_dir(out, model, cfg, run_id, info, resume=resume)
    p0 = first_param(model)
    if saved is not None:
        normaliser = Normaliser.from_state_dict(saved["normaliser"])
    elif normaliser is None:
        normaliser = Normaliser.fit(train_data)
    groups = cfg.param_groups(model)
    optimizer = optimizer_class(groups, lr=cfg.learning_rate(mcfg.width), betas=cfg.betas,
                                weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps)
    prog, rows, kappa_used, fpa_measured = _initial_progress(model, optimizer, saved, kappa)
    n_params = model.n_parameters
    extra_passes = cfg.symmetry_rotations if cfg.symmetry_weight > 0 else 0
    run = _Run(
        cfg=cfg, info=info, model=model, net=_data_parallel(model, info, p0.device), optimizer=optimizer,
        normaliser=normaliser, train_data=train_data, val_data=val_data, run_id=run_id, out=out,
        ckpt_path=out / CHECKPOINT_NAME if out is not None else None,
        log_path=out / LOG_NAME if out is not None else None,
        lr=cfg.learning_rate(mcfg.width),
        lr_groups=tuple((g["role"], g["lr"], sum(p.numel() for p in g["params"])) for g in groups),
        kappa=kappa_used, n_params=n_params, flops_factor=3.0 * kappa_used * n_params * (1 + extra_passes),
        prog=prog, rows=rows, fpa_measured=fpa_measured, dtype=p0.dtype, device=p0.device,
        hours_at_start=prog.hours, last_ckpt_step=rows[-1].step if rows else None,
    )
    run.t_start = time.perf_counter()
    if saved is not None:
        _discard_killed_writes(run)
    return run


def _open_out_dir(out: Path | None, model: Potential, cfg: TrainConfig, run_id: str, info: DistInfo, *,
                  resume: bool) -> dict[str, Any] | None:
    """Create ``out`` (proving it writable) and return the checkpoint to resume, if any, after checking it
    belongs to this model, these options and this run."""
    if out is None:
        return None
    _prepare_out_dir(out, info)
    ckpt_path = out / CHECKPOINT_NAME
    if not ckpt_path.exists():
        return None
    if not resume:
        raise FileExistsError(f"{out} already holds a run ({CHECKPOINT_NAME}); pass resume=True to "
                              "continue it, or choose another out_dir")
    saved = load_checkpoint(ckpt_path)
    mcfg = dataclasses.asdict(model.config)
    if saved["model_config"] != mcfg:
        raise ValueError(f"cannot resume {ckpt_path}: it was written for model config "
                         f"{saved['model_config']}, not {mcfg}")
    check_resumable(saved["train_config"], cfg, ckpt_path)
    if saved["run"]["run_id"] != run_id:
        raise ValueError(f"cannot resume {ckpt_path}: it holds run {saved['run']['run_id']!r}, not {run_id!r}")
    return saved


def _initial_progress(model: Potential, optimizer: Any, saved: dict[str, Any] | None,
                      kappa: float | None) -> tuple[_Progress, list[EvalRow], float, float]:
    """``(progress, rows, kappa, flops per atom measured)``: from the checkpoint (whose weights and optimiser
    state are loaded), or fresh (kappa measured unless given)."""
    if saved is not None:
        model.load_state_dict(saved["model_state"])
        optimizer.load_state_dict(saved["optimizer_state"])
        sp = saved["progress"]
        prog = _Progress(step=int(sp["step"]), tokens=int(sp["tokens"]), epoch=int(sp["epoch"]),
                         batch_in_epoch=int(sp["batch_in_epoch"]), hours=float(sp["hours"]))
        rows = [EvalRow(**r) for r in saved["rows"]]
        return prog, rows, float(saved["run"]["kappa"]), float(saved["run"]["flops_per_atom_measured"])
    if kappa is None:
        from nnip_scaling.flops import estimate_kappa

        kappa = float(estimate_kappa(model, batch_sizes=(8, 32)).kappa)
    return _Progress(), [], float(kappa), math.nan


def _data_parallel(model: Potential, info: DistInfo, device: torch.device) -> Any:
    if info.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=True)


def _discard_killed_writes(run: _Run) -> None:
    """A resumed run's checkpoint is the truth: remove half-written temporary files and rewrite the log
    from the checkpoint's rows (dropping rows a killed run wrote after its last checkpoint)."""
    if not (run.info.is_main and run.out is not None):
        return
    assert run.log_path is not None
    for stale in run.out.glob(f".{CHECKPOINT_NAME}.*.tmp"):  # left by a write that was killed
        stale.unlink(missing_ok=True)
    for stale in run.out.glob(f".{LOG_NAME}.*.tmp"):
        stale.unlink(missing_ok=True)
    if run.rows:
        atomic_write_text(_log_text(run), run.log_path)
    elif run.log_path.exists():
        run.log_path.unlink()


def _open_progress_bar(run: _Run, progress: bool | None) -> Any:
    if not run.info.is_main:
        return None
    by_tokens = run.cfg.tokens is not None
    total = run.cfg.tokens if by_tokens else run.cfg.steps
    bar = _progress_bar(progress, total, "atom" if by_tokens else "step", run.run_id)
    if bar is not None:
        bar.update(run.prog.tokens if by_tokens else run.prog.step)
    return bar


# ----------------------------------------------------------------------------------------------- step 3: loop


def _loop(run: _Run, bar: Any) -> str:
    """Train until the budget is spent (returns why), evaluating, logging and checkpointing on schedule."""
    run.optimizer.train()
    run.model.train()
    data = _Batches(run)
    stop = _budget_reason(run)
    while not stop:
        t0 = time.perf_counter()
        graph, batch_tokens = data.next()
        t1 = time.perf_counter()
        if math.isnan(run.fpa_measured):
            run.fpa_measured = _measured_flops_per_atom(run, graph, batch_tokens)
            t1 = time.perf_counter()
        run.times["data"] += t1 - t0
        train_loss = _train_step(run, graph)
        _advance(run, batch_tokens, train_loss)
        if run.prog.batch_in_epoch == 0:
            data.end_epoch()
        if bar is not None:
            bar.update(batch_tokens if run.cfg.tokens is not None else 1)
            bar.set_postfix(loss=f"{train_loss:.4g}", refresh=False)
        stop = _budget_reason(run)
        if run.prog.step % run.cfg.eval_every == 0 or stop:
            _evaluate_and_save(run, stop)
    if (not run.rows or run.rows[-1].step != run.prog.step) and run.prog.step > 0:
        _evaluate_and_save(run, stop)  # resumed a finished run with an off-schedule last evaluation
    return stop


class _Batches:
    """The training batches of the current epoch, in the epoch's order (a pure function of ``(seed, epoch)``),
    from the run's position in it; the neighbour graph and the augmentation are applied here."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.plan: tuple[np.ndarray, np.ndarray] | None = None
        self.batches: Any = None

    def next(self) -> tuple[AtomicGraph, int]:
        """The next batch (this rank's share) and the global batch's atoms."""
        run, cfg, prog = self.run, self.run.cfg, self.run.prog
        if self.batches is None:
            self.plan = _epoch_plan(len(run.train_data), np.asarray(run.train_data.n_atoms), cfg.batch_size,
                                    cfg.seed, prog.epoch, run.info)
            rest = self.plan[0][prog.batch_in_epoch:].reshape(-1)
            self.batches = iter_batches(run.train_data.select(rest), cfg.batch_size // run.info.world_size,
                                        normaliser=run.normaliser, dtype=run.dtype, device=run.device)
        assert self.plan is not None
        g = next(self.batches)
        g = g.with_edges(run.model.config.cutoff, run.model.config.max_neighbors)
        if cfg.augment:
            rot = _rotations(cfg.seed, prog.step, cfg.batch_size)[run.info.rank :: run.info.world_size]
            g = rotate(g, rot)
        return g, int(self.plan[1][prog.batch_in_epoch])

    def end_epoch(self) -> None:
        self.batches = None


def _train_step(run: _Run, g: AtomicGraph) -> float:
    """One optimiser step on batch ``g``: forward, backward, gradient clipping, update. Returns the
    objective per molecule (before the step). Raises :class:`NonFiniteLossError` before the update when
    the loss or the gradient norm is not finite."""
    cfg, info, prog = run.cfg, run.info, run.prog
    t1 = time.perf_counter()
    out = run.net(g)
    objective = loss_terms(out.energy, out.forces, g, energy_weight=run.weights[0],
                           force_weight=run.weights[1]).total.sum()
    if cfg.symmetry_weight > 0:
        sym_gen = _generator(cfg.seed, _STREAM_SYMMETRY, prog.step * info.world_size + info.rank)
        sym = symmetry_terms(run.model, g, cfg.symmetry_rotations, generator=sym_gen,
                             energy_weight=run.weights[0], force_weight=run.weights[1])
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
    grad_norm = float(torch.nn.utils.clip_grad_norm_(run.model.parameters(), clip))
    if not (math.isfinite(train_loss) and math.isfinite(grad_norm)):
        what = f"training loss is {train_loss}" if not math.isfinite(train_loss) else f"gradient norm is {grad_norm}"
        raise NonFiniteLossError(
            f"run {run.run_id!r}: the {what} at step {prog.step + 1} (tokens seen {prog.tokens}); training "
            "stopped before the update. " + _kept(run.ckpt_path, run.last_ckpt_step),
            step=prog.step + 1, checkpoint_step=run.last_ckpt_step)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    t4 = time.perf_counter()
    run.times["forward"] += t2 - t1
    run.times["backward"] += t3 - t2
    run.times["optimizer"] += t4 - t3
    return train_loss


def _advance(run: _Run, batch_tokens: int, train_loss: float) -> None:
    """Count the step: steps, tokens, position in the epoch (a finished epoch starts the next)."""
    prog = run.prog
    run.last_train_loss = train_loss
    prog.step += 1
    prog.tokens += batch_tokens
    prog.batch_in_epoch += 1
    if prog.batch_in_epoch >= run.n_batches:
        prog.epoch += 1
        prog.batch_in_epoch = 0


def _budget_reason(run: _Run) -> str:
    """Why the run must stop now (``"tokens"``, ``"steps"``, ``"data"``, ``"minutes"``), or ``""``."""
    cfg, prog = run.cfg, run.prog
    if cfg.tokens is not None and prog.tokens >= cfg.tokens:
        return "tokens"
    if cfg.steps is not None and prog.step >= cfg.steps:
        return "steps"
    if prog.epoch >= cfg.epochs:
        return "data"
    if cfg.minutes is not None:
        out_of_time = run.elapsed_hours() * 60.0 >= cfg.minutes
        if run.info.world_size > 1:  # clocks differ between ranks: rank 0 decides for all
            import torch.distributed as dist

            flag = torch.tensor([1.0 if out_of_time else 0.0], device=run.info.device)
            dist.broadcast(flag, src=0)
            out_of_time = bool(flag.item() > 0)
        if out_of_time:
            return "minutes"
    return ""


# ------------------------------------------------------------------------------ step 4: evaluate, log, checkpoint


def _evaluate_and_save(run: _Run, stop_reason: str) -> None:
    """Evaluate the averaged weights, append a log row, write the checkpoint and the log; then back to the
    training weights unless the run stops (the end keeps the averaged weights)."""
    t0 = time.perf_counter()
    run.rows.append(_evaluate_row(run))
    t1 = time.perf_counter()
    run.times["evaluation"] += t1 - t0
    _save(run, stop_reason)
    run.times["checkpoint"] += time.perf_counter() - t1
    if not stop_reason:
        run.optimizer.train()
        run.model.train()


def _evaluate_row(run: _Run) -> EvalRow:
    """The validation loss of the optimiser's averaged weights :math:`x` as a log row (the model is left in
    eval mode with the averaged weights)."""
    prog = run.prog
    run.optimizer.eval()
    run.model.eval()
    s = eval_sums(run.model, run.val_data, run.normaliser, run.cfg.val_batch_size, run.weights, run.info,
                  run.dtype, run.device)
    n = float(s[2])
    e_loss, f_loss = float(s[0] / n), float(s[1] / n)
    loss = e_loss + f_loss
    if not math.isfinite(loss):
        raise NonFiniteLossError(
            f"run {run.run_id!r}: the validation loss is {loss} after step {prog.step}; training stopped. "
            + _kept(run.ckpt_path, run.last_ckpt_step), step=prog.step, checkpoint_step=run.last_ckpt_step)
    prog.hours = run.elapsed_hours()
    return EvalRow(step=prog.step, epoch=prog.epoch + prog.batch_in_epoch / run.n_batches, tokens=prog.tokens,
                   flops=run.flops_factor * prog.tokens, flops_measured=run.fpa_measured * prog.tokens,
                   hours=prog.hours, loss=loss, energy_loss=e_loss, force_loss=f_loss,
                   train_loss=run.last_train_loss, lr=run.lr)


def _save(run: _Run, stop_reason: str) -> None:
    """Checkpoint and log, written atomically by rank 0 (all ranks wait for it)."""
    if run.info.is_main and run.out is not None:
        assert run.ckpt_path is not None and run.log_path is not None
        atomic_save(_checkpoint(run, stop_reason), run.ckpt_path)
        atomic_write_text(_log_text(run), run.log_path)
    run.last_ckpt_step = run.prog.step
    if run.info.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def _checkpoint(run: _Run, stop_reason: str) -> dict[str, Any]:
    """The checkpoint: plain data and tensors only (``torch.load(weights_only=True)`` reads it)."""
    mcfg, prog = run.model.config, run.prog
    return {
        "format": FORMAT,
        "model_config": dataclasses.asdict(mcfg),
        "model_state": run.model.state_dict(),
        "optimizer_state": run.optimizer.state_dict(),
        "normaliser": run.normaliser.state_dict(),
        "train_config": run.cfg.as_dict(),
        "run": {"run_id": run.run_id, "kind": mcfg.kind, "width": mcfg.width, "depth": mcfg.depth,
                "n_params": run.n_params, "kappa": run.kappa, "flops_per_atom_measured": run.fpa_measured,
                "lr": run.lr},
        "progress": {"step": prog.step, "tokens": prog.tokens, "epoch": prog.epoch,
                     "batch_in_epoch": prog.batch_in_epoch, "hours": prog.hours, "stop_reason": stop_reason},
        "rows": [dataclasses.asdict(r) for r in run.rows],
    }


def _log_text(run: _Run) -> str:
    mcfg = run.model.config
    return csv_text(make_run_log(run.run_id, mcfg.kind, mcfg.width, mcfg.depth, run.n_params, tuple(run.rows)))


# --------------------------------------------------------------------------------------------- step 5: result


def _result(run: _Run, stop: str) -> TrainResult:
    mcfg, prog = run.model.config, run.prog
    return TrainResult(
        run_id=run.run_id, kind=mcfg.kind, width=mcfg.width, depth=mcfg.depth, n_params=run.n_params,
        kappa=run.kappa, flops_per_atom_measured=run.fpa_measured, lr=run.lr, steps=prog.step,
        tokens=prog.tokens, epoch=prog.epoch + prog.batch_in_epoch / run.n_batches, hours=run.elapsed_hours(),
        stop_reason=stop, rows=tuple(run.rows), timings=PhaseTimes(**run.times), log_path=run.log_path,
        checkpoint_path=run.ckpt_path, lr_groups=run.lr_groups,
    )


# ---------------------------------------------------------------------------------------------------- helpers


def _measured_flops_per_atom(run: _Run, graph: AtomicGraph, batch_tokens: int) -> float:
    """Counted FLOPs of one training step per atom of the global batch (first batch only)."""
    fpa = _measure_step_flops(run.model, graph, run.cfg, run.weights) / max(graph.n_atoms, 1)
    if run.info.world_size > 1:
        fpa = _sum_over_ranks(fpa * graph.n_atoms, run.info) / batch_tokens
    return fpa


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
