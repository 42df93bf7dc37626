"""What :func:`~nnip_scaling.train.train` returns and logs: learning-curve rows, phase times, the result,
and the run log in :mod:`nnip_scaling.scaling.runs`' CSV format."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnip_scaling.scaling.runs import RunLog, format_number

__all__ = ["EvalRow", "EvalResult", "PhaseTimes", "TrainResult", "make_run_log", "csv_text"]


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
        return make_run_log(self.run_id, self.kind, self.width, self.depth, self.n_params, self.rows)


_EXTRA_COLUMNS = ("kind", "width", "depth", "step", "epoch", "flops_measured", "energy_loss", "force_loss",
                  "train_loss", "lr")


def make_run_log(run_id: str, kind: str, width: int, depth: int, n_params: int, rows: tuple[EvalRow, ...]) -> RunLog:
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


def csv_text(log: RunLog) -> str:
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
