"""Neighbour-list construction: pure-torch cell list vs brute force (and torch-cluster if installed).

Cases: (a) 64 molecules x 30 atoms (a typical training batch), (b) one liquid-density cluster of 5k,
20k and 50k atoms. Cutoff 6 Å. Reports median wall time over repeats and peak memory (RSS growth of a
fresh subprocess per case, so earlier cases do not mask later ones). Brute force is the dense
all-pairs distance matrix, skipped where it would need more than ~6 GB.

Usage: python benchmarks/bench_neighbors.py [--quick]   -> table on stdout, JSON in benchmarks/results/
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "bench_neighbors.json"
DENSITY = 0.1  # atoms / Å^3, about liquid water counting all atoms


def make_case(name: str):
    import torch

    gen = torch.Generator().manual_seed(0)
    if name == "batch64x30":
        # 64 molecules of 30 atoms, each a ~10 Å blob at the same density
        side = (30 / DENSITY) ** (1 / 3)
        pos = torch.rand(64 * 30, 3, generator=gen) * side
        batch = torch.arange(64).repeat_interleave(30)
        return pos, batch
    n = int(name.removeprefix("cluster"))
    side = (n / DENSITY) ** (1 / 3)
    return torch.rand(n, 3, generator=gen) * side, torch.zeros(n, dtype=torch.int64)


def brute_force(pos, batch, cutoff):
    import torch

    d2 = torch.cdist(pos, pos).pow_(2)
    mask = (d2 <= cutoff * cutoff) & (batch[:, None] == batch[None, :])
    mask.fill_diagonal_(False)
    return mask.nonzero().t()


def run_one(case: str, method: str, repeats: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from nnip_scaling.neighbors import radius_graph

    pos, batch = make_case(case)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fns = {
        "torch_cell_list": lambda: radius_graph(pos, batch, 6.0, backend="torch"),
        "torch_cluster": lambda: radius_graph(pos, batch, 6.0, backend="torch_cluster"),
        "brute_force": lambda: brute_force(pos, batch, 6.0),
    }
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ei = fns[method]()
        times.append(time.perf_counter() - t0)
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    return dict(case=case, method=method, n_atoms=pos.shape[0], n_edges=int(ei.shape[1]),
                median_s=statistics.median(times), peak_mem_mb=peak_mb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (smoke test)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (use 1 on a loaded machine)")
    ap.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        print(json.dumps(run_one(args._child[0], args._child[1], int(args._child[2]), args.threads)))
        return
    cases = ["batch64x30", "cluster5000"] if args.quick else ["batch64x30", "cluster5000", "cluster20000", "cluster50000"]
    methods = ["torch_cell_list", "brute_force"]
    if importlib.util.find_spec("torch_cluster") is not None:
        methods.append("torch_cluster")
    rows = []
    for case in cases:
        n = 64 * 30 if case == "batch64x30" else int(case.removeprefix("cluster"))
        for method in methods:
            if method == "brute_force" and n * n * 4 * 3 > 6e9:
                continue
            repeats = 5 if n <= 5000 else 3
            proc = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--_child", case, method, str(repeats)],
                                  capture_output=True, text=True, check=True)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"{'case':<14}{'method':<17}{'atoms':>7}{'edges':>11}{'median ms':>11}{'peak MB':>9}{'µs/atom':>9}")
    for r in rows:
        print(f"{r['case']:<14}{r['method']:<17}{r['n_atoms']:>7}{r['n_edges']:>11}{1e3 * r['median_s']:>11.1f}"
              f"{r['peak_mem_mb']:>9.0f}{1e6 * r['median_s'] / r['n_atoms']:>9.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(threads=args.threads, machine=platform.machine(), cpus=os.cpu_count(), python=platform.python_version(), cutoff=6.0,
                density=DENSITY, load_avg=os.getloadavg())
    RESULTS.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
