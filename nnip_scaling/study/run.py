r"""The one-command scaling study: plan -> runs -> analysis -> report (paper sections 3-4 on a CPU budget).

For each model family a short ladder of widths at fixed depth (:mod:`nnip_scaling.study.config`) is
trained on the same data to the same token budget :math:`D_\max` (schedule-free AdamW, μP learning rates
from each family's base width), logging validation learning curves with their compute
:math:`C = 3\kappa N D` and wall-clock hours (:mod:`~nnip_scaling.study.plan`,
:mod:`~nnip_scaling.study.execute`). Then, per family (:func:`~nnip_scaling.scaling.analyse_runs`): the
loss-compute frontier and eq. 4, the sum law (eq. 5), the compute-optimal allocation and eq. 7, the
consistency check of table 1, and the sanity gates (wider models win at equal data; exponents clear of
their bounds with informative intervals). The report (:mod:`~nnip_scaling.study.report`) and the figures
(:mod:`~nnip_scaling.study.figures`) show every number with its interval, and label the ones that failed
a gate with the likely cause and what to change.

CPU-sized runs are short: the exponents of a 3-minute study are noisy and need not match the paper's
(which trained up to 9·10^8 tokens on GPUs); the intervals and gates say how far to trust them.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnip_scaling.study.analyse import PFLOP, analyse_study, rank_families, reserve_seconds
from nnip_scaling.study.config import FamilySpec, StudyConfig, config_to_toml
from nnip_scaling.study.data import load_study_data
from nnip_scaling.study.execute import execute
from nnip_scaling.study.plan import load_plan, plan_runs, save_plan, tasks_of

__all__ = ["StudyResult", "run_study"]


@dataclass(frozen=True)
class StudyResult:
    """What :func:`run_study` returns.

    Attributes:
        out_dir: the output directory.
        runs: all learning curves (:class:`~nnip_scaling.scaling.RunLog`), also in ``runs.csv``.
        fits: family -> :class:`~nnip_scaling.scaling.analysis.RunAnalysis` (fits, gates, warnings), in
            config order (families that logged no point are missing).
        ranking: families by direct :math:`\\gamma_c`, largest first (fitted families only).
        summaries: one dict per run (N, D, steps, first and final loss, hours, stop reason).
        report: path of ``report.md``.
        figures: PNG files written (empty without matplotlib).
        seconds: wall-clock time of the study.
        workers: runs executed at a time.
    """

    out_dir: Path
    runs: Any
    fits: Mapping[str, Any]
    ranking: tuple[str, ...]
    summaries: tuple[dict[str, Any], ...]
    report: Path
    figures: tuple[Path, ...]
    seconds: float
    workers: int = 1

    @property
    def gates_passed(self) -> bool:
        """Whether every family passed every sanity gate."""
        return all(not f.failed_gates for f in self.fits.values())


def _build(spec: FamilySpec, width: int, seed: int) -> Any:
    import torch

    from nnip_scaling.models import build_model

    torch.manual_seed(seed)
    return build_model(spec.kind, width, spec.depth, **dict(spec.options))


def _check_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"--out {str(out)!r} is not a writable directory: {err.strerror or err}") from err


def _kappas(config: StudyConfig) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """κ per family (figure 2): one FLOP count over the family's widths, with its warnings."""
    from nnip_scaling.flops import estimate_kappa

    estimates, notes = {}, {}
    for spec in config.families:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            estimates[spec.kind] = estimate_kappa(lambda w, s=spec: _build(s, w, config.seed), widths=list(spec.widths),
                                                  batch_sizes=list(config.kappa_batch_sizes), seed=config.seed)
        notes[spec.kind] = sorted({str(w.message) for w in caught})
    return estimates, notes


def _collect(out: Path, summaries: list[dict[str, Any]]) -> Any:
    from nnip_scaling.scaling import RunLog, load_runs, save_runs
    from nnip_scaling.train.loop import LOG_NAME

    logs = [load_runs(out / "runs" / s["run_id"] / LOG_NAME) for s in summaries
            if (out / "runs" / s["run_id"] / LOG_NAME).exists()]
    if not logs:
        raise ValueError("no run logged any evaluation (budget too small?)")
    keys = list(dict.fromkeys(k for log in logs for k in log.extra))
    extra = {k: np.concatenate([log.extra[k].astype(str) if log.extra[k].dtype.kind in "US" else log.extra[k]
                                for log in logs]) for k in keys}
    runs = RunLog(*(np.concatenate([getattr(log, c) for log in logs])
                    for c in ("run_id", "n_params", "tokens", "flops", "loss", "hours")), extra=extra)
    save_runs(out / "runs.csv", runs)
    return runs


def _threads(config: StudyConfig, workers: int) -> int:
    return config.threads if config.threads is not None else max(1, (os.cpu_count() or 1) // workers)


def run_study(config: StudyConfig, out_dir: str | os.PathLike[str], *, workers: int = 1, executor: str = "local",
              cluster: Mapping[str, Any] | None = None, log: Callable[[str], None] = print,
              plots: bool = True) -> StudyResult:
    """Run the study of ``config`` into ``out_dir`` (see the module docstring).

    Re-running with the same ``out_dir`` resumes: the saved plan is reused, finished runs are kept,
    unfinished ones continue from their checkpoints. The results do not depend on ``workers`` or
    ``executor`` (each run is a pure function of the plan and the seed, on ``config.threads`` threads).

    Args:
        config: a :class:`StudyConfig` (:func:`default_config` or :func:`load_config`).
        out_dir: output directory (created; must be writable, checked before anything runs).
        workers: runs at a time (processes, or concurrent cluster jobs); the time budget is planned for them.
        executor: ``"local"`` (this machine), ``"slurm"`` (submitit, extra ``cluster``), or
            ``"submitit-local"`` (submitit's local executor).
        cluster: submitit parameters for ``"slurm"`` (``slurm_partition``, ``timeout_min``, ...).
        log: where progress lines go.
        plots: write the PNG figures (needs matplotlib; skipped with a message when it is missing).

    Returns:
        :class:`StudyResult`.

    Raises:
        PermissionError: ``out_dir`` is not writable.
        ImportError: ``schedulefree`` (``pip install 'nnip_scaling[train]'``) or, for a submitit executor,
            ``submitit`` (``pip install 'nnip_scaling[cluster]'``) is missing.
        FileNotFoundError / ValueError: bad data, configuration or plan.
        RuntimeError: a run failed (named).
    """
    if not isinstance(config, StudyConfig):
        raise TypeError(f"config must be a StudyConfig, got {type(config).__name__}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    t_start = time.perf_counter()
    out = Path(out_dir)
    _check_out(out)
    try:
        import schedulefree  # noqa: F401
    except ImportError as err:
        raise ImportError("the study trains with schedule-free AdamW: pip install 'nnip_scaling[train]'") from err
    if executor != "local":
        from nnip_scaling.study.execute import _submitit_module

        _submitit_module()
    import torch

    old_threads = torch.get_num_threads()
    threads = _threads(config, workers)
    torch.set_num_threads(threads)
    try:
        return _run(config, out, workers, executor, cluster, log, plots, threads, t_start)
    finally:
        torch.set_num_threads(old_threads)


def _run(config: StudyConfig, out: Path, workers: int, executor: str, cluster: Mapping[str, Any] | None,
         log: Callable[[str], None], plots: bool, threads: int, t_start: float) -> StudyResult:
    from nnip_scaling.data import Normaliser

    train_ds, val_ds, data_name = load_study_data(config.data, config.val_fraction, config.val_molecules, config.seed)
    log(f"data: {data_name}: {len(train_ds)} training configurations ({train_ds.n_atoms_total:,} atoms), "
        f"{len(val_ds)} validation configurations for the learning curves")
    (out / "config.toml").write_text(config_to_toml(config))
    estimates, kappa_notes = _kappas(config)
    plan = load_plan(out)
    missing = [s.kind for s in config.families if s.kind not in plan.get("families", {})]
    if missing:
        left = config.minutes * 60.0 - (time.perf_counter() - t_start) - reserve_seconds(config)
        new = plan_runs(config, train_ds, val_ds, Normaliser.fit(train_ds), lambda s, w: _build(s, w, config.seed),
                        seconds=left, workers=workers)
        plan = {**new, "families": {**plan.get("families", {}), **new["families"]}} if plan else new
        save_plan(out, plan)
    for spec in config.families:
        fp = plan["families"][spec.kind]
        log(f"{spec.kind}: widths {list(spec.widths)}, depth {spec.depth}, D_max = {fp['tokens']:,} atoms "
            f"({fp['epochs']} epoch(s)), kappa = {estimates[spec.kind].kappa:.3g}")
    kappas = {s.kind: {w: row.kappa for w, row in zip(s.widths, estimates[s.kind].per_size)} for s in config.families}
    tasks = tasks_of(config, plan, kappas, threads=threads)
    by_id = {t.run_id: s for t, s in zip(tasks, execute(tasks, out, workers=workers, executor=executor,
                                                        cluster=cluster, log=log))}
    summaries = [by_id[f"{s.kind}-w{w}"] for s in config.families for w in s.widths]
    runs = _collect(out, summaries)
    fits = analyse_study(config, runs, {k: e.kappa for k, e in estimates.items()})
    ranking = rank_families(fits)
    figures: tuple[Path, ...] = ()
    if plots:
        try:
            from nnip_scaling.study.figures import write_figures

            figures = write_figures(out, fits, pflop=PFLOP)
        except ImportError as err:
            log(f"plots skipped: {err}")
    seconds = time.perf_counter() - t_start
    from nnip_scaling.study.report import write_report

    report = write_report(out, config=config, data_name=data_name, n_train=len(train_ds),
                          n_train_atoms=train_ds.n_atoms_total, n_val=len(val_ds), runs=runs, summaries=summaries,
                          fits=fits, ranking=ranking, figures=figures, plan=plan, seconds=seconds, workers=workers,
                          kappa_notes=kappa_notes)
    return StudyResult(out_dir=out, runs=runs, fits=fits, ranking=ranking, summaries=tuple(summaries),
                       report=report, figures=figures, seconds=seconds, workers=workers)
