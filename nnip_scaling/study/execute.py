"""Execution of the study's runs: in this process, in ``N`` local worker processes, or on a SLURM cluster.

Every run is independent and writes only into ``<out>/runs/<run_id>/`` (``log.csv``, ``checkpoint.pt``,
and ``done.json`` when it finished), so the executors differ only in *where* :func:`run_task` is called:

* ``workers=1``: one after the other in this process;
* ``workers=N``: a pool of ``N`` processes (``spawn``), each run on ``task.threads`` torch threads; the
  longest runs are started first;
* ``executor="slurm"``: one SLURM job per run through `submitit <https://github.com/facebookincubator/submitit>`_
  (extra ``cluster``); ``executor="submitit-local"`` runs the same jobs as local processes (what the tests
  use, and a way to check a cluster set-up on a laptop).

The results do not depend on the executor: a run is a pure function of its task (seed, data, plan), and
each run uses the same number of threads everywhere. Resume works the same in every mode: a finished run
(``done.json`` for the planned budget) is skipped, an interrupted one continues from its last checkpoint
(:func:`~nnip_scaling.train.train` with ``resume=True``, exact on CPU).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nnip_scaling.study.plan import RunTask

__all__ = ["run_task", "execute", "EXECUTORS", "DONE_NAME"]

EXECUTORS = ("local", "slurm", "submitit-local")
DONE_NAME = "done.json"
_NORMALISERS: dict[tuple[str, float, int, int], Any] = {}


def _normaliser(task: RunTask, train_ds: Any) -> Any:
    from nnip_scaling.data import Normaliser

    key = (task.data, task.val_fraction, task.val_molecules, task.seed)
    if key not in _NORMALISERS:
        _NORMALISERS.clear()
        _NORMALISERS[key] = Normaliser.fit(train_ds)
    return _NORMALISERS[key]


def run_task(task: RunTask, out: str) -> dict[str, Any]:
    """Train one run of the plan into ``<out>/runs/<run_id>/`` (resuming its checkpoint) and return its
    summary (also written to ``done.json``). The entry point of every worker and cluster job."""
    import torch

    from nnip_scaling.models import build_model
    from nnip_scaling.study.data import load_study_data
    from nnip_scaling.train.checkpoint import atomic_write_text
    from nnip_scaling.train.loop import train

    old_threads = torch.get_num_threads()
    torch.set_num_threads(task.threads)
    try:
        train_ds, val_ds, _ = load_study_data(task.data, task.val_fraction, task.val_molecules, task.seed)
        torch.manual_seed(task.seed)
        model = build_model(task.kind, task.width, task.depth, **task.options)
        run_dir = Path(out) / "runs" / task.run_id
        t0 = time.perf_counter()
        res = train(model, train_ds, val_ds, out_dir=run_dir, resume=True, normaliser=_normaliser(task, train_ds),
                    kappa=task.kappa, progress=False, run_id=task.run_id, **task.train)
        summary = {
            "run_id": task.run_id, "kind": task.kind, "width": task.width, "n_params": res.n_params,
            "tokens_planned": int(task.train["tokens"]), "tokens": res.tokens, "steps": res.steps,
            "epoch": res.epoch, "lr": res.lr, "first_loss": res.rows[0].loss if res.rows else math.nan,
            "final_loss": res.final_loss, "hours": res.hours, "stop_reason": res.stop_reason,
            "seconds": time.perf_counter() - t0, "threads": task.threads,
        }
        atomic_write_text(json.dumps(summary, indent=1), run_dir / DONE_NAME)
        return summary
    finally:
        torch.set_num_threads(old_threads)


def finished(task: RunTask, out: Path) -> dict[str, Any] | None:
    """The saved summary of ``task`` when it already ran to its planned budget, else None."""
    path = Path(out) / "runs" / task.run_id / DONE_NAME
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return summary if summary.get("tokens_planned") == int(task.train["tokens"]) else None


def _kept(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """A summary saved by an earlier invocation, marked ``kept`` (its training time is not this one's)."""
    return None if summary is None else {**summary, "kept": True}


def _line(i: int, n: int, s: Mapping[str, Any]) -> str:
    return (f"[{i}/{n}] {s['run_id']:<18} N={s['n_params']:>8,}  D={s['tokens']:>9,}  steps={s['steps']:>5}  "
            f"loss {s['first_loss']:.3f} -> {s['final_loss']:.3f}  ({s['seconds']:.1f} s, stop: {s['stop_reason']})")


def execute(tasks: Sequence[RunTask], out: Path, *, workers: int = 1, executor: str = "local",
            cluster: Mapping[str, Any] | None = None, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run every unfinished task; returns the summaries of all tasks, in ``tasks`` order.

    Args:
        tasks: the plan's runs (:func:`~nnip_scaling.study.plan.tasks_of`).
        out: the study's output directory.
        workers: runs at a time (local processes, or concurrent cluster jobs).
        executor: ``"local"``, ``"slurm"`` or ``"submitit-local"``.
        cluster: submitit parameters for ``"slurm"`` (e.g. ``{"slurm_partition": "cpu", "timeout_min": 120}``).
        log: where progress lines go.

    Raises:
        ValueError: unknown executor or ``workers < 1``.
        ImportError: submitit is missing for a submitit executor (``pip install 'nnip_scaling[cluster]'``).
        RuntimeError: a run failed (the message names it and carries its error).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {executor!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    out = Path(out)
    done = {t.run_id: _kept(finished(t, out)) for t in tasks}
    pending = [t for t in tasks if done[t.run_id] is None]
    n = len(tasks)
    for i, t in enumerate((t for t in tasks if done[t.run_id] is not None), 1):
        log(f"[{i}/{n}] {t.run_id:<18} finished earlier (kept)")
    counter = iter(range(n - len(pending) + 1, n + 1))

    def record(summary: dict[str, Any]) -> None:
        done[summary["run_id"]] = summary
        log(_line(next(counter), n, summary))

    if not pending:
        pass
    elif executor == "local" and workers == 1:
        for t in pending:
            record(_call(run_task, t, out))
    elif executor == "local":
        _pool(pending, out, workers, record)
    else:
        _submitit(pending, out, workers, executor, dict(cluster or {}), record)
    return [done[t.run_id] for t in tasks]


def _call(fn: Callable[..., dict[str, Any]], task: RunTask, out: Path) -> dict[str, Any]:
    try:
        return fn(task, str(out))
    except Exception as err:  # name the run; keep the original as the cause
        raise RuntimeError(f"run {task.run_id} failed: {type(err).__name__}: {err}") from err


def _pool(pending: Sequence[RunTask], out: Path, workers: int, record: Callable[[dict[str, Any]], None]) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=ctx) as pool:
        futures = {pool.submit(run_task, t, str(out)): t for t in pending}
        remaining = set(futures)
        while remaining:
            finished_now, remaining = wait(remaining, return_when=FIRST_COMPLETED)  # log each run as it ends
            for f in finished_now:
                err = f.exception()
                if err is not None:
                    for other in remaining:
                        other.cancel()
                    raise RuntimeError(f"run {futures[f].run_id} failed: {type(err).__name__}: {err}") from err
                record(f.result())


def _submitit_module() -> Any:
    try:
        import submitit
    except ImportError:
        raise ImportError("running the study through submitit (SLURM) needs it: pip install "
                          "'nnip_scaling[cluster]'") from None
    return submitit


def _submitit(pending: Sequence[RunTask], out: Path, workers: int, executor: str, cluster: dict[str, Any],
              record: Callable[[dict[str, Any]], None]) -> None:
    """One job per run; at most ``workers`` at a time (a SLURM array's parallelism, or waves locally)."""
    submitit = _submitit_module()
    folder = out / "submitit"
    threads = max(t.threads for t in pending)
    longest = max(t.train.get("minutes") or t.seconds / 60.0 for t in pending)
    params: dict[str, Any] = {"timeout_min": max(10, int(3 * longest) + 5), "cpus_per_task": threads}
    params.update(cluster)
    if executor == "slurm":
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
        params.setdefault("slurm_array_parallelism", workers)
        ex.update_parameters(**params)
        waves = [list(pending)]
    else:
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(**{k: v for k, v in params.items() if k in ("timeout_min", "cpus_per_task")})
        waves = [list(pending[i:i + workers]) for i in range(0, len(pending), workers)]
    for wave in waves:
        jobs = ex.map_array(run_task, wave, [str(out)] * len(wave))
        for job, t in zip(jobs, wave):
            try:
                summary = job.result()
            except Exception as err:
                raise RuntimeError(f"run {t.run_id} failed in submitit job {job.job_id}: {err}") from err
            record(summary)
