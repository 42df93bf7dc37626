r"""The study's plan: which runs, with which token budgets, saved as ``plan.json``.

A study is a grid of independent training runs, one per (family, width). Every width of a family is
trained on the same data stream (same seed, same batch size) to the family's token budget
:math:`D_\max`, with a validation evaluation every ``eval_every`` steps, so the evaluations of all widths
fall on the same data sizes :math:`D_1 < \dots < D_K` (nested prefixes of one stream; the schedule-free
optimiser needs no horizon, so each prefix is a run trained on that much data). This varies :math:`N` and
:math:`D` independently, as the sum law (eq. 5) needs. A :math:`D_\max` beyond one pass over the data
trains several epochs (``StudyConfig.epochs``), each in a new order with random rotations.

:math:`D_\max` is the family's ``tokens`` when given; otherwise the time budget sets it: a short pilot
(two timed steps per width) measures each width's seconds per atom, the budget left after the fixed
costs is shared equally between the families (times the number of workers running in parallel), and
:math:`D_\max` is what the family's widths can train in their share. Each budget-planned run also gets a
minutes cap, three times its planned time.

The plan is written before any run starts; re-running the study on the same output directory reuses it,
so a resumed (or parallel, or cluster) execution trains exactly the same runs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnip_scaling.study.config import FamilySpec, StudyConfig

__all__ = ["RunTask", "plan_runs", "load_plan", "save_plan", "tasks_of", "PLAN_NAME", "PLAN_VERSION"]

PLAN_NAME = "plan.json"
PLAN_VERSION = 2
_FIXED_PER_RUN = 2.0  # seconds: worker start, model build, FLOP count of one step, final evaluation, checkpoint
_CAP_FACTOR = 3.0
_PARALLEL_EFFICIENCY = 0.85  # runs sharing a machine slow each other down (memory bandwidth, other load)


@dataclass(frozen=True)
class RunTask:
    """One training run of the plan, in plain values (picklable, so that any worker can run it).

    Attributes:
        run_id: ``"<kind>-w<width>"``; its files go to ``<out>/runs/<run_id>/``.
        kind, width, depth, options: the model (:func:`~nnip_scaling.models.build_model`).
        data, val_fraction, val_molecules, seed: how the worker loads the study's data.
        kappa: FLOPs per parameter per atom of this width (for ``flops = 3 kappa N D``).
        train: keyword arguments of :func:`~nnip_scaling.train.train` (tokens, epochs, eval_every, lr, ...).
        threads: torch intra-op threads of the run.
        seconds: planned seconds (for scheduling the longest runs first).
    """

    run_id: str
    kind: str
    width: int
    depth: int
    options: dict[str, Any]
    data: str
    val_fraction: float
    val_molecules: int
    seed: int
    kappa: float
    train: dict[str, Any]
    threads: int
    seconds: float


def load_plan(out: Path) -> dict[str, Any]:
    """The plan saved in ``out`` (``{}`` when there is none).

    Raises:
        ValueError: the file is not a plan of this version (delete it, or use another ``--out``).
    """
    path = Path(out) / PLAN_NAME
    if not path.exists():
        return {}
    try:
        plan = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it to plan the study again") from None
    if plan.get("version") != PLAN_VERSION:
        raise ValueError(f"{path} was written by another version of the study (plan version "
                         f"{plan.get('version')!r}, expected {PLAN_VERSION}); use a new --out directory")
    return plan


def save_plan(out: Path, plan: Mapping[str, Any]) -> Path:
    """Write ``plan.json`` atomically; returns its path."""
    from nnip_scaling.train.checkpoint import atomic_write_text

    path = Path(out) / PLAN_NAME
    atomic_write_text(json.dumps(plan, indent=1), path)
    return path


def _seconds_per_atom(model: Any, train_ds: Any, normaliser: Any, batch_size: int, seed: int) -> float:
    """Wall seconds per atom of a whole training step (batch assembly, neighbour list, forward, backward,
    optimiser step), timed on two batches after one warm-up batch, times a safety factor of 1.25."""
    import torch

    from nnip_scaling.data import iter_batches
    from nnip_scaling.train.loss import loss_terms

    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    order = np.random.default_rng(seed).permutation(len(train_ds))[: 3 * batch_size]
    batches = iter_batches(train_ds.select(order), batch_size, normaliser=normaliser)
    atoms, t = 0, 0.0
    for i in range(3):
        t0 = time.perf_counter()
        g = next(batches).with_edges(model.config.cutoff, model.config.max_neighbors)
        out = model(g)
        loss = loss_terms(out.energy, out.forces, g).total.mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i > 0:
            t += time.perf_counter() - t0
            atoms += g.n_atoms
    return 1.25 * t / max(atoms, 1)


def _family_tokens(config: StudyConfig, spec: FamilySpec, epoch_atoms: float, atoms_per_config: float,
                   per_atom: Sequence[float], eval_cost: Sequence[float], seconds: float) -> int:
    """:math:`D_\\max` of one family: its ``tokens``, or what fits in ``seconds`` (at least four batches, at
    most ``epochs`` passes over the data, at most ``max_tokens``)."""
    bs = spec.batch_size or config.batch_size
    if spec.tokens is not None:
        d = float(spec.tokens)
    else:
        d = (seconds - sum(eval_cost) - _FIXED_PER_RUN * len(per_atom)) / sum(per_atom)
        if config.max_tokens is not None:
            d = min(d, config.max_tokens)
    d = max(d, 4 * bs * atoms_per_config)
    return int(min(d, config.epochs * epoch_atoms * 0.98))


def plan_runs(config: StudyConfig, train_ds: Any, val_ds: Any, normaliser: Any, build: Callable[[FamilySpec, int], Any],
              *, seconds: float, workers: int) -> dict[str, Any]:
    """Plan every family: pilot timings, :math:`D_\\max`, evaluation schedule, minutes caps.

    Args:
        config: the study.
        train_ds, val_ds, normaliser: the study's data.
        build: ``build(spec, width)`` -> a fresh model (for the pilot).
        seconds: wall seconds available for training, all families together.
        workers: runs executed in parallel.

    Returns:
        the plan (JSON-able): ``{"version", "workers", "families": {kind: {...}}}``.
    """
    epoch_atoms = (len(train_ds) // config.batch_size) * config.batch_size * train_ds.n_atoms_total / len(train_ds)
    atoms_per_config = train_ds.n_atoms_total / len(train_ds)
    parallel = 1.0 if workers == 1 else workers * _PARALLEL_EFFICIENCY
    share = max(seconds, 0.0) * parallel / len(config.families)
    families = {}
    for spec in config.families:
        bs = spec.batch_size or config.batch_size
        per_atom = [_seconds_per_atom(build(spec, w), train_ds, normaliser, bs, config.seed) for w in spec.widths]
        eval_cost = [config.evals_per_run * val_ds.n_atoms_total * sw / 3.0 for sw in per_atom]
        d = _family_tokens(config, spec, epoch_atoms, atoms_per_config, per_atom, eval_cost, share)
        steps = max(1, int(d // (bs * atoms_per_config)))
        planned = {str(w): d * sw + ev + _FIXED_PER_RUN for w, sw, ev in zip(spec.widths, per_atom, eval_cost)}
        families[spec.kind] = {
            "tokens": d,
            "epochs": max(1, math.ceil(d / epoch_atoms)),
            "eval_every": max(1, steps // config.evals_per_run),
            "seconds_planned": planned,
            "minutes_cap": None if spec.tokens is not None else
            {w: max(_CAP_FACTOR * s / 60.0, 0.2) for w, s in planned.items()},
            "seconds_per_atom": {str(w): sw for w, sw in zip(spec.widths, per_atom)},
            "share_seconds": share,
        }
    return {"version": PLAN_VERSION, "workers": workers, "families": families}


def tasks_of(config: StudyConfig, plan: Mapping[str, Any], kappas: Mapping[str, Mapping[int, float]], *,
             threads: int) -> list[RunTask]:
    """The runs of ``plan``, longest first (so that parallel workers finish together).

    Args:
        kappas: family -> width -> κ of that width.
        threads: torch threads of each run.
    """
    tasks = []
    for spec in config.families:
        fp = plan["families"][spec.kind]
        for w in spec.widths:
            cap = fp["minutes_cap"]
            train_kw = dict(
                tokens=int(fp["tokens"]), epochs=int(fp["epochs"]), augment=int(fp["epochs"]) > 1,
                batch_size=spec.batch_size or config.batch_size, lr=spec.lr or config.lr,
                base_width=spec.base_width or spec.widths[len(spec.widths) // 2], seed=config.seed,
                eval_every=int(fp["eval_every"]),
            )
            if cap is not None:
                train_kw["minutes"] = float(cap[str(w)])
            if config.lr_rule is not None:
                train_kw["lr_rule"] = config.lr_rule
            tasks.append(RunTask(
                run_id=f"{spec.kind}-w{w}", kind=spec.kind, width=w, depth=spec.depth, options=dict(spec.options),
                data=config.data, val_fraction=config.val_fraction, val_molecules=config.val_molecules,
                seed=config.seed, kappa=float(kappas[spec.kind][w]), train=train_kw, threads=threads,
                seconds=float(fp["seconds_planned"][str(w)])))
    return sorted(tasks, key=lambda t: -t.seconds)


def task_json(task: RunTask) -> dict[str, Any]:
    """``task`` as a JSON-able dict (the run's ``task.json``)."""
    return asdict(task)
