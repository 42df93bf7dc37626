"""``nnip-scaling study``: train the four families along short ladders and fit their scaling laws.

    nnip-scaling study --quick --out study/          # about 3 minutes on 2 CPU cores
    nnip-scaling study --out study/ --workers 2      # 15 minutes, two runs at a time (default: the cores, <= 4)
    nnip-scaling study --config study.toml --out study/ [--minutes M]
    nnip-scaling study --config study.toml --out study/ --executor slurm --workers 16 --slurm-partition cpu
    nnip-scaling study --dump-config study.toml      # write the default configuration and stop

Writes ``report.md`` (exponent table with 95% intervals and sanity gates, ranking), ``report.json``,
``runs.csv``, per-run logs and checkpoints, and ``fig1_compute.png``, ``fig3_frontiers.png``,
``fig5_sum_law.png``. Running the same command again on the same ``--out`` resumes unfinished runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

HELP = "run a scaling study: train model ladders on the built-in (or your) data, fit the laws, write a report"


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = (s.strip() for s in text.split("=", 1))
    for cast in (int, float):
        try:
            return k, cast(v)
        except ValueError:
            pass
    return k, v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="TOML", help="study configuration (see docs/tutorial.md)")
    parser.add_argument("--out", default="study", metavar="DIR", help="output directory (default: study)")
    parser.add_argument("--minutes", type=float, metavar="M", help="wall-clock budget (default 15; --quick: ~3)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller ladders and budget: about 3 minutes on 2 CPU cores")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="runs at a time: local processes (threads divided between them), or concurrent "
                             "cluster jobs (default: the CPU cores, at most 4); results do not depend on it")
    parser.add_argument("--executor", choices=("local", "slurm", "submitit-local"), default="local",
                        help="where runs execute: this machine (default), SLURM through submitit (extra "
                             "'cluster'), or submitit's local executor")
    parser.add_argument("--slurm-partition", metavar="NAME", help="SLURM partition (--executor slurm)")
    parser.add_argument("--slurm-timeout", type=int, metavar="MIN", help="SLURM time limit per run in minutes")
    parser.add_argument("--slurm-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="any other submitit parameter, e.g. slurm_account=abc or mem_gb=8 (repeatable)")
    parser.add_argument("--no-plots", action="store_true", help="do not write the PNG figures")
    parser.add_argument("--dump-config", metavar="TOML",
                        help="write the effective configuration to this file and exit")


def _cluster(args: Any) -> dict[str, Any]:
    cluster = dict(args.slurm_option)
    if args.slurm_partition:
        cluster["slurm_partition"] = args.slurm_partition
    if args.slurm_timeout:
        cluster["timeout_min"] = args.slurm_timeout
    return cluster


def run(args: Any) -> int:
    from nnip_scaling.study.config import config_to_toml, default_config, load_config
    from nnip_scaling.study.report import exponent_table, gate_lines
    from nnip_scaling.study.run import run_study

    if args.workers is None:
        args.workers = max(1, min(4, os.cpu_count() or 1))
    try:
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        config = load_config(args.config, quick=args.quick) if args.config else default_config(quick=args.quick)
        if args.minutes is not None:
            import dataclasses

            config = dataclasses.replace(config, minutes=args.minutes)
        if args.dump_config:
            with open(args.dump_config, "w") as fh:
                fh.write(config_to_toml(config))
            print(f"wrote {args.dump_config}")
            return 0
        print(f"nnip-scaling study: {len(config.families)} families, "
              f"{sum(len(f.widths) for f in config.families)} runs, budget {config.minutes:g} min, "
              f"{args.workers} worker(s) ({args.executor}) -> {args.out}", flush=True)
        result = run_study(config, args.out, workers=args.workers, executor=args.executor, cluster=_cluster(args),
                           log=lambda msg: print(msg, flush=True), plots=not args.no_plots)
    except (ValueError, TypeError, FileNotFoundError, PermissionError, ImportError, RuntimeError) as err:
        print(f"nnip-scaling study: error: {err}", file=sys.stderr)
        return 2
    fits = list(result.fits.values())
    print()
    print("\n".join(exponent_table(fits, result.runs)))
    print()
    print("sanity gates:")
    print("\n".join(gate_lines(fits)))
    if not result.gates_passed:
        print("WARNING: numbers marked (!k) failed a sanity gate; they are not measurements (see the notes above "
              "for the likely cause and what to change).")
    losing = [f.label for f in fits if f.wider_wins is not None and not f.wider_wins.passed]
    if losing:
        print(f"WARNING: the budget ({config.minutes:g} min, {args.workers} worker(s)) is too small on this "
              f"machine now: wider models do not win at equal data in {', '.join(losing)}, so their alpha is not "
              "measured. Raise --minutes or --workers.")
    print()
    if result.ranking:
        print("ranking by gamma_c: " + " > ".join(result.ranking))
    print(f"report: {result.report} ({result.seconds / 60:.1f} min)")
    return 0
