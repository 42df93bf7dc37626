"""``nnip-scaling graph``: neighbour statistics of the built-in molecule set.

Builds the radius graph of the built-in probe set (90 G2 molecules) at one or more cutoffs and prints,
per cutoff, the number of edges, mean / max neighbours per atom and the time the neighbour search took.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

from nnip_scaling._cli_args import positive_angstrom

HELP = "Neighbour-list statistics of the built-in molecule set at given cutoffs."
_N_BUILTIN = 90  # molecules in the built-in probe set


def _int_in(low: int, high: float):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            bound = f"{low}..{high}" if high != math.inf else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be an integer {bound}, got {value}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cutoff", type=positive_angstrom, nargs="+", default=[4.0, 6.0, 10.0],
                        help="cutoffs in Å (positive)")
    parser.add_argument("--max-neighbors", type=_int_in(1, math.inf), default=None,
                        help="neighbour cap per atom (>= 1; tied neighbours are all kept)")
    parser.add_argument("--n-molecules", type=_int_in(1, _N_BUILTIN), default=None,
                        help=f"use only the first N molecules (1..{_N_BUILTIN})")
    parser.add_argument("--json", default=None, help="also write the table as JSON to this path")


def run(args: argparse.Namespace) -> int:
    if args.json:  # fail before the work, not after it
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"--json {args.json}: the folder {folder} does not exist")
    import torch

    from nnip_scaling.data.molecules import builtin_molecules
    from nnip_scaling.graph import AtomicGraph

    mols = builtin_molecules(args.n_molecules)
    graph = AtomicGraph.from_molecules([m.as_tuple() for m in mols], dtype=torch.float64)
    rows = []
    for cutoff in args.cutoff:
        t0 = time.perf_counter()
        g = graph.with_edges(cutoff, args.max_neighbors)
        dt = time.perf_counter() - t0
        deg = torch.bincount(g.edge_index[1], minlength=g.n_atoms).double()
        rows.append(
            dict(
                cutoff=cutoff,
                max_neighbors=args.max_neighbors,
                n_molecules=g.n_graphs,
                n_atoms=g.n_atoms,
                n_edges=g.n_edges,
                mean_neighbors=float(deg.mean()),
                max_neighbors_seen=int(deg.max()),
                isolated_atoms=int((deg == 0).sum()),
                seconds=dt,
            )
        )
    print(f"built-in molecules: {graph.n_graphs} molecules, {graph.n_atoms} atoms (G2 set via ASE)")
    print(f"{'cutoff/Å':>9} {'edges':>8} {'mean nbrs':>10} {'max nbrs':>9} {'isolated':>9} {'time/ms':>8}")
    for r in rows:
        print(
            f"{r['cutoff']:>9.2f} {r['n_edges']:>8d} {r['mean_neighbors']:>10.2f} "
            f"{r['max_neighbors_seen']:>9d} {r['isolated_atoms']:>9d} {1e3 * r['seconds']:>8.2f}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0
