"""``nnip-scaling graph``: neighbour statistics of the built-in molecule set.

Builds the radius graph of the built-in probe set (90 G2 molecules) at one or more cutoffs and prints,
per cutoff, the number of edges, mean / max neighbours per atom and the time the neighbour search took.
"""

from __future__ import annotations

import argparse
import json
import time

HELP = "Neighbour-list statistics of the built-in molecule set at given cutoffs."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cutoff", type=float, nargs="+", default=[4.0, 6.0, 10.0], help="cutoffs in Å")
    parser.add_argument("--max-neighbors", type=int, default=None, help="neighbour cap per atom")
    parser.add_argument("--n-molecules", type=int, default=None, help="use only the first N molecules")
    parser.add_argument("--json", default=None, help="also write the table as JSON to this path")


def run(args: argparse.Namespace) -> int:
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
