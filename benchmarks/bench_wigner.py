"""Wigner-D methods for a batch of rotation matrices: time per call, forward and forward+backward.

Methods (all return the per-l blocks D^0..D^l_max):
  polynomial  nnip_scaling default: D^l = C^T (D^{l-1} (x) R) C, polynomial in R (finite gradients)
  euler       nnip_scaling method="euler": YXY Euler angles + J-matrix formula (singular at poles)
  e3nn        e3nn.o3.Irrep(l, (-1)^l).D_from_matrix for each l (Euler angles + matrix_exp)

Usage: python benchmarks/bench_wigner.py [--n 15000] [--repeats 5] [--dtype float32]
Writes benchmarks/results/bench_wigner.json. Timings are medians; compare ratios within one run
(the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from e3nn import o3

from nnip_scaling.geometry import random_rotation, wigner_D_blocks


def _e3nn_blocks(l_max: int, r: torch.Tensor) -> list[torch.Tensor]:
    return [o3.Irrep(l, (-1) ** l).D_from_matrix(r) for l in range(l_max + 1)]


METHODS = {
    "polynomial": lambda l_max, r: wigner_D_blocks(l_max, r, method="polynomial"),
    "euler": lambda l_max, r: wigner_D_blocks(l_max, r, method="euler"),
    "e3nn": _e3nn_blocks,
}


def _time(fn, repeats: int) -> float:
    fn()  # warm-up (caches, allocator)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=15000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--l-max", type=int, nargs="+", default=[2, 4, 6])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_wigner.json"))
    args = ap.parse_args()
    if os.environ.get("NNIP_FAST"):
        args.n, args.repeats, args.l_max = 500, 1, [2]
    dtype = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    r0 = random_rotation(args.n, generator=g, dtype=dtype)
    weights = {l: torch.randn(2 * l + 1, 2 * l + 1, generator=g, dtype=torch.float64).to(dtype) for l in range(max(args.l_max) + 1)}

    rows = []
    for l_max in args.l_max:
        ref = [b.double() for b in METHODS["polynomial"](l_max, r0.double())]
        for name, fn in METHODS.items():
            out = fn(l_max, r0)
            err = max((o.double() - rb).abs().max().item() for o, rb in zip(out, ref))
            t_fwd = _time(lambda: fn(l_max, r0), args.repeats)

            def fwd_bwd():
                r = r0.clone().requires_grad_(True)
                loss = sum((blk * weights[l]).sum() for l, blk in enumerate(fn(l_max, r)))
                loss.backward()
                return r.grad

            grad = fwd_bwd()
            t_fb = _time(fwd_bwd, args.repeats)
            # gradient at the identity (what the SO(2) block meets for edges along +y)
            r_id = torch.eye(3, dtype=dtype).expand(4, 3, 3).clone().requires_grad_(True)
            loss = sum((blk * weights[l]).sum() for l, blk in enumerate(fn(l_max, r_id)))
            (g_id,) = torch.autograd.grad(loss, r_id)
            print(f"  l_max={l_max} {name}: fwd {1e3 * t_fwd:.1f} ms, fwd+bwd {1e3 * t_fb:.1f} ms", flush=True)
            rows.append(
                {
                    "l_max": l_max,
                    "method": name,
                    "forward_ms": 1e3 * t_fwd,
                    "forward_backward_ms": 1e3 * t_fb,
                    "max_abs_err_vs_float64_polynomial": err,
                    "grad_finite_random": bool(torch.isfinite(grad).all()),
                    "grad_finite_at_identity": bool(torch.isfinite(g_id).all()),
                }
            )
    base = {(r["l_max"]): r for r in rows if r["method"] == "polynomial"}
    print(f"Wigner-D blocks l=0..l_max for {args.n} rotations, {args.dtype}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    hdr = f"{'l_max':>5} {'method':>10} {'fwd ms':>9} {'x poly':>7} {'fwd+bwd ms':>11} {'x poly':>7} {'max err':>9} {'grad@I':>7}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        b = base[r["l_max"]]
        r["forward_ratio_vs_polynomial"] = r["forward_ms"] / b["forward_ms"]
        r["forward_backward_ratio_vs_polynomial"] = r["forward_backward_ms"] / b["forward_backward_ms"]
        print(
            f"{r['l_max']:>5} {r['method']:>10} {r['forward_ms']:>9.2f} {r['forward_ratio_vs_polynomial']:>7.2f}"
            f" {r['forward_backward_ms']:>11.2f} {r['forward_backward_ratio_vs_polynomial']:>7.2f}"
            f" {r['max_abs_err_vs_float64_polynomial']:>9.1e} {('finite' if r['grad_finite_at_identity'] else 'NaN/inf'):>7}"
        )
    result = {
        "benchmark": "bench_wigner",
        "n_rotations": args.n,
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "rows": rows,
    }
    if not os.environ.get("NNIP_FAST"):
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
