"""Training throughput per model family, and where a training step spends its time.

For each family at two widths of the study's default ladder (``nnip_scaling.study.default_config``,
the 15-minute study), trains on the built-in data with :func:`nnip_scaling.train.train` (batch 16,
float32) and reports atoms per second of the training loop (data + forward + backward + optimiser,
evaluation excluded) and the share of each phase: data (batch assembly, normalisation, neighbour lists),
forward (model + eq. 1 loss), backward, optimiser (gradient clipping + schedule-free AdamW step). A short
warm-up run precedes each timed run; the median of ``--repeats`` timed runs is reported.

The machine is shared and noisy: compare the rows of one run with each other (ratios), not with other runs.

Usage: python benchmarks/bench_train.py [--quick] [--threads N]   -> table on stdout, JSON in
benchmarks/results/bench_train.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "bench_train.json"
PHASES = ("data", "forward", "backward", "optimizer")


def bench_one(spec, width: int, train_ds, val_ds, normaliser, *, steps: int, repeats: int, batch_size: int) -> dict:
    import torch

    from nnip_scaling.models import build_model
    from nnip_scaling.train import train

    def run(n_steps: int, seed: int):
        torch.manual_seed(0)
        model = build_model(spec.kind, width, spec.depth, **dict(spec.options))
        res = train(model, train_ds, val_ds, steps=n_steps, batch_size=batch_size, lr=1e-3, kappa=1.0,
                    eval_every=10**9, normaliser=normaliser, progress=False, seed=seed)
        return model, res

    run(2, 0)  # warm-up (allocator, first-call overheads)
    rows = []
    for r in range(repeats):
        model, res = run(steps, r + 1)
        t = res.timings
        loop = t.data + t.forward + t.backward + t.optimizer
        rows.append({"atoms_per_s": res.tokens / loop, "loop_s": loop, "tokens": res.tokens,
                     **{f"share_{p}": getattr(t, p) / loop for p in PHASES}})
    best = sorted(rows, key=lambda d: d["atoms_per_s"])[len(rows) // 2]  # median run
    return {"kind": spec.kind, "width": width, "depth": spec.depth, "n_params": model.n_parameters,
            "steps": steps, "batch_size": batch_size, **best,
            "atoms_per_s_all": [d["atoms_per_s"] for d in rows]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from nnip_scaling.data import Normaliser, load_dataset
    from nnip_scaling.study import default_config

    train_ds = load_dataset("builtin", split="train")
    val_ds = load_dataset("builtin", split="val").subset(0.01, seed=0)
    normaliser = Normaliser.fit(train_ds)
    steps, repeats = (8, 1) if args.quick else (20, 3)
    results = []
    t0 = time.perf_counter()
    for spec in default_config().families:
        for width in (spec.widths[0], spec.widths[-1]):
            results.append(bench_one(spec, width, train_ds, val_ds, normaliser, steps=steps, repeats=repeats,
                                     batch_size=16))
            r = results[-1]
            print(f"  measured {r['kind']} w={width}: {r['atoms_per_s']:.0f} atoms/s", flush=True)
    header = f"{'family':<14} {'width':>5} {'depth':>5} {'N':>9} {'atoms/s':>9}   " + \
        "  ".join(f"{p:>9}" for p in PHASES)
    print()
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['kind']:<14} {r['width']:>5} {r['depth']:>5} {r['n_params']:>9,} {r['atoms_per_s']:>9.0f}   "
              + "  ".join(f"{100 * r['share_' + p]:>8.1f}%" for p in PHASES))
    out = {
        "benchmark": "bench_train",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s) (shared), torch {torch.__version__}",
        "threads": args.threads,
        "settings": {"steps": steps, "repeats": repeats, "batch_size": 16, "dtype": "float32",
                     "data": "built-in GFN2-xTB set (train split)"},
        "seconds": time.perf_counter() - t0,
        "results": results,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
