"""``nnip-scaling kappa``: κ of the model families, counted and predicted, beside the paper's.

For every family (default: all four) and width (default: the first three rungs of the paper's
ladder, at the paper's depth, cutoff and neighbour cap), the forward FLOPs are counted on nested
probe batches (paper section 4.1, figure 2) and κ is also predicted from the placement of the
parameters. Printed per width: N, FLOPs per atom, κ counted, κ predicted, their ratio, mean
neighbours per atom of the probe, κ predicted with every atom at the neighbour cap, and the
paper's κ; then per family the fit through the origin over all widths and its drift.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "count and predict kappa (forward FLOPs per parameter per atom) of the model families"


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nnip_scaling.flops.kappa import PROBE_SOURCES
    from nnip_scaling.models.build import KINDS

    parser.add_argument("--kind", choices=KINDS, action="append", default=None, metavar="KIND",
                        help=f"model family, repeatable (default: all of {', '.join(KINDS)})")
    parser.add_argument("--widths", type=_positive_int, nargs="+", default=None, metavar="W",
                        help="widths to measure, for every selected family (default: the first three "
                        "rungs of each family's ladder; 'spherical' width = channels C)")
    parser.add_argument("--depth", type=_positive_int, default=None,
                        help="depth of every model (default: the paper's depth of each family)")
    parser.add_argument("--probe", choices=tuple(PROBE_SOURCES), nargs="+", default=["g2"],
                        help="probe molecules: g2 (90 small G2 molecules, built in) and/or gfn2 (the "
                        "shipped GFN2-xTB set, molecules up to 30 atoms); default g2")
    parser.add_argument("--batch-sizes", type=_positive_int, nargs="+", default=None, metavar="B",
                        help="molecules per probe batch (default: g2 8 32 90, gfn2 4 12 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the probe batches and weights")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="torch threads (default: torch's default)")
    parser.add_argument("--placement", action="store_true",
                        help="also print the parameter placement of the largest model of each family")
    parser.add_argument("--json", metavar="PATH", default=None, help="write every row as JSON")


def _row_dict(r: Any, row: Any) -> dict[str, Any]:
    p = row.placement
    return {
        "kind": r.kind,
        "probe": r.probe,
        "depth": r.depth,
        "width": row.width,
        "cutoff": r.cutoff,
        "max_neighbors": r.max_neighbors,
        "n_params": row.n_params,
        "flops_per_atom": row.flops_per_atom,
        "kappa": row.kappa,
        "kappa_predicted": row.kappa_predicted,
        "predicted_over_counted": row.predicted_over_counted,
        "mean_neighbors": row.mean_neighbors,
        "kappa_predicted_at_cap": row.kappa_predicted_at_cap,
        "paper_kappa": r.paper_kappa,
        "placement": {
            "per_node": p.per_node,
            "per_edge": p.per_edge,
            "per_triplet": p.per_triplet,
            "per_graph": p.per_graph,
            "other_per_atom": p.other_per_atom,
            "free": p.free,
            "unused": p.unused,
        },
    }


def _family_dict(r: Any) -> dict[str, Any]:
    e = r.estimate
    return {
        "kind": r.kind,
        "probe": r.probe,
        "depth": r.depth,
        "cutoff": r.cutoff,
        "max_neighbors": r.max_neighbors,
        "batch_sizes": list(r.batch_sizes),
        "kappa_fit": e.kappa,
        "kappa_intercept_fit": None if e.kappa_intercept_fit is None else list(e.kappa_intercept_fit),
        "drift": e.drift,
        "loglog_slope": e.loglog_slope,
        "r_squared": e.r_squared,
        "mean_neighbors": e.mean_neighbors,
        "paper_kappa": r.paper_kappa,
        "uncounted_ops": dict(e.uncounted),
        "rows": [_row_dict(r, row) for row in r.rows],
    }


def run(args: argparse.Namespace) -> int:
    import torch

    from nnip_scaling.flops.families import family_kappa, kappa_table
    from nnip_scaling.models.build import KINDS

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    kinds = list(dict.fromkeys(args.kind)) if args.kind else list(KINDS)
    if args.widths is not None and len(set(args.widths)) != len(args.widths):
        print(f"error: --widths must be distinct, got {args.widths}", file=sys.stderr)
        return 2
    results = []
    try:
        for probe in dict.fromkeys(args.probe):
            for kind in kinds:
                results.append(family_kappa(kind, args.widths, depth=args.depth, probe=probe,
                                            batch_sizes=args.batch_sizes, seed=args.seed))
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(kappa_table(results))
    if args.placement:
        for r in results:
            print(f"\n{r.kind} ({r.probe}), width {r.rows[-1].width}:")
            print(r.rows[-1].placement.table())
    if args.json:
        out = {"command": "nnip-scaling kappa", "families": [_family_dict(r) for r in results]}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)
            fh.write("\n")
    return 0
