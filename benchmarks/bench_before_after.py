"""Our spherical family before and after a change, beside fairchem's eSEN, interleaved in one process.

Builds fairchem-core 2.24's eSEN (as ``bench_vs_anchors.py`` does), our model from an older checkout
(``--before``, e.g. ``git worktree add --detach ../before <commit>``) and our model from this checkout,
with the same configuration and seed, and times the three call by call (``bench_vs_anchors.interleaved``:
one thread, medians, load and yardsticks logged). Both checkouts must be importable in the anchors'
venv (nothing is installed: each is put on ``sys.path`` in turn while its model is built).

Usage (in the anchors' venv, benchmarks/anchors/README.md):

    OMP_NUM_THREADS=1 <anchor-venv>/bin/python benchmarks/bench_before_after.py --before ../before \
        --channels 8,16,32 --rounds 3
-> a line per (C, mode) on stdout, JSON in benchmarks/results/bench_before_after.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "anchors"))
sys.path.insert(0, str(HERE))

import bench_anchors as ba  # noqa: E402
import bench_vs_anchors as bva  # noqa: E402  (imports our package from this checkout)


def _package_at(root: str):
    """``(nnip_scaling.models, AtomicGraph)`` imported from the checkout at ``root``."""
    for name in [k for k in sys.modules if k == "nnip_scaling" or k.startswith("nnip_scaling.")]:
        del sys.modules[name]
    sys.path.insert(0, root)
    try:
        import nnip_scaling.models as models
        from nnip_scaling import AtomicGraph
    finally:
        sys.path.remove(root)
    return models, AtomicGraph


def ours(name: str, root: str, channels: int) -> ba.Anchor:
    models, graph_cls = _package_at(root)
    torch.manual_seed(0)
    model = models.build_model("spherical", width=channels, depth=12, l_max=4, m_max=2, hidden_channels=32,
                               edge_channels=32, num_radial=64, **bva.SPHERICAL)
    anchor = bva.our_anchor(name, model, **bva.SPHERICAL)
    prepare = anchor.prepare

    def prepare_here(mols: ba.Molecules):  # the AtomicGraph class of the same checkout as the model
        g = prepare(mols)
        return graph_cls(positions=g.positions, atomic_numbers=g.atomic_numbers, batch=g.batch, n_graphs=g.n_graphs,
                         edge_index=g.edge_index, edge_vec=g.edge_vec, cutoff=g.cutoff, max_neighbors=g.max_neighbors)

    return ba.Anchor(name, model, prepare_here, anchor.infer, anchor.train_forward)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="path of a checkout of the older code")
    ap.add_argument("--channels", default="8,16,32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "bench_before_after.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    mols = ba.make_molecules(32, 15, 30, seed=0)
    rows = []
    for c in (int(v) for v in args.channels.split(",")):
        contenders = [ba.build_anchor("esen", channels=c, layers=12), ours("before", args.before, c),
                      ours("after", str(HERE.parent), c)]
        contenders[0].model.float()
        inputs = [a.prepare(mols) for a in contenders]
        for mode in ("fwd", "train"):
            r = bva.interleaved(contenders, inputs, mode, rounds=args.rounds, repeats=1, warmup=1)
            t = r["median_cpu_s"]
            print(f"C={c} {mode:5s} eSEN {t['esen']:.2f}s  before {t['before']:.2f}s ({t['esen'] / t['before']:.2f}x)"
                  f"  after {t['after']:.2f}s ({t['esen'] / t['after']:.2f}x)", flush=True)
            rows.append(dict(channels=c, mode=mode, **r))
    Path(args.out).write_text(json.dumps(dict(command=" ".join(sys.argv), args=vars(args), rows=rows), indent=1))
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
