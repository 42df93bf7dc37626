"""``nnip-scaling study``: train the four families along short ladders and fit their scaling laws.

    nnip-scaling study --quick --out study/          # about 3 minutes on 2 CPU cores
    nnip-scaling study --out study/                  # 15 minutes
    nnip-scaling study --config study.toml --out study/ [--minutes M]
    nnip-scaling study --dump-config study.toml      # write the default configuration and stop

Writes ``report.md`` (exponent table with 95% intervals, ranking), ``report.json``, ``runs.csv``,
per-run logs and checkpoints, and ``fig1_compute.png``, ``fig3_frontiers.png``, ``fig5_sum_law.png``.
Running the same command again on the same ``--out`` resumes unfinished runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "run a scaling study: train model ladders on the built-in (or your) data, fit the laws, write a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="TOML", help="study configuration (see docs/tutorial.md)")
    parser.add_argument("--out", default="study", metavar="DIR", help="output directory (default: study)")
    parser.add_argument("--minutes", type=float, metavar="M", help="wall-clock budget (default 15; --quick: ~3)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller ladders and budget: about 3 minutes on 2 CPU cores")
    parser.add_argument("--no-plots", action="store_true", help="do not write the PNG figures")
    parser.add_argument("--dump-config", metavar="TOML",
                        help="write the effective configuration to this file and exit")


def run(args: Any) -> int:
    from nnip_scaling.train.report import exponent_table
    from nnip_scaling.train.study import config_to_toml, default_config, load_config, run_study

    try:
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
              f"{sum(len(f.widths) for f in config.families)} runs, budget {config.minutes:g} min -> {args.out}",
              flush=True)
        result = run_study(config, args.out, log=lambda msg: print(msg, flush=True), plots=not args.no_plots)
    except (ValueError, TypeError, FileNotFoundError, PermissionError, ImportError) as err:
        print(f"nnip-scaling study: error: {err}", file=sys.stderr)
        return 2
    print()
    print("\n".join(exponent_table(result.fits, result.runs)))
    print()
    if result.ranking:
        print("ranking by gamma_c: " + " > ".join(result.ranking))
    print(f"report: {result.report} ({result.seconds / 60:.1f} min)")
    return 0
