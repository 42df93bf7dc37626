"""``nnip-scaling dataset``: build a GFN2-xTB labelled molecule data set, or describe one.

    nnip-scaling dataset build --n 10000 --out data.npz [--seed 0] [--workers 2] [--per-molecule 4]
    nnip-scaling dataset info builtin            # or a path to a .npz file
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "build (GFN2-xTB via tblite) or describe a labelled molecule data set"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset_action", metavar="ACTION")
    sub.required = True
    b = sub.add_parser(
        "build",
        help="generate configurations and labels (needs: pip install 'nnip_scaling[data]')",
        description="Generate off-equilibrium molecular configurations with GFN2-xTB energies and forces. "
        "The output is byte-identical for a seed, whatever --workers is.",
    )
    b.add_argument("--n", type=int, required=True, help="number of configurations")
    b.add_argument("--out", required=True, help="output .npz path")
    b.add_argument("--seed", type=int, default=0, help="seed of everything random (default 0)")
    b.add_argument("--workers", type=int, default=1, help="worker processes, one thread each (default 1)")
    b.add_argument("--per-molecule", type=int, default=4, help="configurations per molecule (default 4)")
    b.add_argument("--quiet", action="store_true", help="no progress lines")
    i = sub.add_parser("info", help="print counts and provenance of a data set")
    i.add_argument("path", help="'builtin' or a .npz file")
    i.add_argument("--json", action="store_true", help="print the full metadata as JSON")


def _info(args: Any) -> int:
    from nnip_scaling.data.io import load_dataset, load_npz

    ds = load_dataset("builtin") if args.path == "builtin" else load_npz(args.path)
    if args.json:
        print(json.dumps(dict(ds.metadata), indent=1, sort_keys=True))
        return 0
    print(f"configurations {len(ds)}, molecules {ds.n_molecules}, atoms {ds.n_atoms_total}")
    if ds.molecule_split is not None:
        from nnip_scaling.data.dataset import SPLITS

        for name in SPLITS:
            part = ds.split(name)
            print(f"  {name:5s}: {len(part)} configurations, {part.n_molecules} molecules, {part.n_atoms_total} atoms")
    labels = ds.metadata.get("labels", {})
    if labels:
        print(f"labels: {labels.get('method')} via {labels.get('program')} {labels.get('tblite_version', '')}")
    return 0


def run(args: Any) -> int:
    if args.dataset_action == "info":
        try:
            return _info(args)
        except (ValueError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    from nnip_scaling.data.build import build_dataset

    progress = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        result = build_dataset(
            args.n, seed=args.seed, workers=args.workers, per_molecule=args.per_molecule, progress=progress
        )
    except (ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result.save(args.out)
    for failure in result.failures:
        print(f"skipped {failure.key}: {failure.reason}", file=sys.stderr)
    ds = result.dataset
    print(
        f"wrote {args.out}: {len(ds)} configurations, {ds.n_molecules} molecules, {ds.n_atoms_total} atoms, "
        f"{len(result.failures)} molecule(s) skipped, {result.seconds:.1f} s"
    )
    return 0
