"""Throughput and peak memory of each model family at three rungs of its paper ladder.

Fixed batch: the 32 largest of the built-in molecules (``builtin_molecules()``, 3-14 atoms each; the
G2 set has nothing near 20 atoms, so the batch averages fewer), edges built once beforehand with the
family's cutoff / neighbour cap. For each (family, width):

- forward: ``model.eval()``, ``torch.no_grad()``, atoms/s;
- train step: ``model.train()``, forward + loss (per-atom energy L1 + force L2, paper eq. 1) +
  ``backward()``, atoms/s;
- peak memory of one forward and of one train step (MB): on CUDA ``torch.cuda.max_memory_allocated``;
  on CPU the growth of the process's peak RSS during that one call, measured in a fresh subprocess
  per case before any timing (coarse: page granularity and glibc's allocator caching).

Each case runs in its own subprocess; forward and train timings alternate (median of repeats), so
load from other processes hits both alike. Compare ratios, not absolute numbers, on a shared machine.

On a shared, overloaded machine use ``--threads 1``: with 2 OpenMP threads and a load average far above
the core count, small kernels (``index_add`` on a few thousand rows) were measured 100-700x slower than
single-threaded, which scrambles the comparison (the committed JSON records ``threads`` and the load).

Add a family by appending its kind to ``KINDS`` (the ladder rungs used are ``RUNG_INDICES``).

Usage: python benchmarks/bench_models.py [--threads N] [--repeats R] [--device cpu|cuda] [--kinds ...]
-> table on stdout, JSON in benchmarks/results/bench_models.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "bench_models.json"

#: families benchmarked; append a kind here when its family lands.
KINDS: list[str] = ["unconstrained", "directional", "cartesian", "spherical"]
#: which rungs of each family's paper ladder (indices into ``ladder(kind)``).
RUNG_INDICES: tuple[int, ...] = (0, 3, 6)
N_MOLECULES = 32


def _batch(device: str, cutoff: float, max_neighbors: int | None):
    from nnip_scaling import AtomicGraph
    from nnip_scaling.data.molecules import builtin_molecules

    mols = sorted(builtin_molecules(), key=lambda m: (-len(m.atomic_numbers), m.name))[:N_MOLECULES]
    gen = torch.Generator().manual_seed(0)
    labelled = []
    for m in mols:
        n = len(m.atomic_numbers)
        labelled.append((m.atomic_numbers, m.positions, float(torch.randn(1, generator=gen)), torch.randn(n, 3, generator=gen)))
    g = AtomicGraph.from_molecules(labelled, device=device)
    return g.with_edges(cutoff, max_neighbors)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _loss(model, g):
    out = model(g)
    n = g.n_atoms_per_graph.clamp(min=1).to(out.energy.dtype)
    e_loss = ((out.energy - g.energy).abs() / n).mean()
    f_loss = (out.forces - g.forces).norm(dim=1).mean()
    return e_loss + f_loss


def run_case(kind: str, index: int, repeats: int, device: str) -> dict:
    """Measure one (family, rung) in this process."""
    from nnip_scaling.models import build_model, ladder

    cfg = ladder(kind)[index]
    g = _batch(device, cfg.cutoff, cfg.max_neighbors)
    torch.manual_seed(0)
    model = build_model(**dataclasses.asdict(cfg)).to(device)

    def forward():
        model.eval()
        with torch.no_grad():
            model(g)

    def train_step():
        model.train()
        model.zero_grad(set_to_none=True)
        _loss(model, g).backward()

    peaks = {}
    for name, fn in (("forward", forward), ("train", train_step)):
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn()
            _sync(device)
            peaks[name] = (torch.cuda.max_memory_allocated() - base) / 2**20
        else:
            base = _maxrss_mb()
            fn()
            peaks[name] = _maxrss_mb() - base
    times: dict[str, list[float]] = {"forward": [], "train": []}
    for _ in range(repeats):
        for name, fn in (("forward", forward), ("train", train_step)):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    fwd, trn = statistics.median(times["forward"]), statistics.median(times["train"])
    return dict(
        kind=kind,
        width=cfg.width,
        depth=cfg.depth,
        params=model.n_parameters,
        n_atoms=g.n_atoms,
        n_edges=g.n_edges,
        forward_s=fwd,
        train_s=trn,
        forward_atoms_per_s=g.n_atoms / fwd,
        train_atoms_per_s=g.n_atoms / trn,
        forward_peak_mb=peaks["forward"],
        train_peak_mb=peaks["train"],
        train_over_forward=trn / fwd,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--kinds", nargs="*", default=KINDS)
    parser.add_argument("--indices", nargs="*", type=int, default=list(RUNG_INDICES))
    parser.add_argument("--_case", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args._case:
        print(json.dumps(run_case(args._case[0], int(args._case[1]), args.repeats, args.device)))
        return 0

    rows = []
    load_before = os.getloadavg()
    for kind in args.kinds:
        for index in args.indices:
            cmd = [sys.executable, __file__, "--_case", kind, str(index), "--threads", str(args.threads),
                   "--repeats", str(args.repeats), "--device", args.device]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"{kind}[{index}] failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"  done {kind} w={r['width']}", file=sys.stderr)

    header = (f"{'family':<14}{'width':>6}{'depth':>6}{'params':>11}{'atoms':>7}{'edges':>7}"
              f"{'fwd atoms/s':>13}{'train atoms/s':>15}{'train/fwd':>10}{'fwd MB':>9}{'train MB':>10}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['kind']:<14}{r['width']:>6}{r['depth']:>6}{r['params']:>11,}{r['n_atoms']:>7}{r['n_edges']:>7}"
              f"{r['forward_atoms_per_s']:>13,.0f}{r['train_atoms_per_s']:>15,.0f}{r['train_over_forward']:>10.2f}"
              f"{r['forward_peak_mb']:>9.1f}{r['train_peak_mb']:>10.1f}")
    meta = dict(
        threads=args.threads,
        repeats=args.repeats,
        device=args.device if not args.device.startswith("cuda") else torch.cuda.get_device_name(0),
        torch=torch.__version__,
        python=platform.python_version(),
        machine=platform.machine(),
        cpu_count=os.cpu_count(),
        loadavg_before=load_before,
        loadavg_after=os.getloadavg(),
        batch=f"{N_MOLECULES} largest built-in molecules, float32, edges prebuilt",
        memory_method="cuda max_memory_allocated" if args.device.startswith("cuda") else "peak RSS growth in a fresh process",
    )
    print(f"threads={args.threads}, load average before/after: {load_before} / {meta['loadavg_after']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
