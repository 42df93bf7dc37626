"""Counting overhead of ``count_flops`` relative to a plain call (target: under 3x).

Each case times the plain call and the same call under ``count_flops`` alternately (side by side, so
load from other processes hits both alike) and reports the ratio of medians (and of minima). The
dispatch-level counter costs a roughly constant few microseconds of Python per aten op, so the ratio
is large for models made of many tiny ops and close to 1 for models dominated by big kernels.

Cases: MLPs (large and small batches), a GPT-style transformer (forward and a training step), a
toy message-passing energy model with conservative forces, and whatever model families
``nnip_scaling.models.build_model`` can build (small widths, the 90 built-in molecules, edges
built beforehand).

Usage: python benchmarks/bench_flops.py [--quick]   -> table on stdout, JSON in benchmarks/results/
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch.utils._python_dispatch import TorchDispatchMode

from nnip_scaling.flops import count_flops

RESULTS = Path(__file__).resolve().parent / "results" / "bench_flops.json"


def _mlp(width: int, depth: int, n_in: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(n_in, width), nn.SiLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.SiLU()]
    return nn.Sequential(*layers, nn.Linear(width, 1))


class _Block(nn.Module):
    def __init__(self, d: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class _GPT(nn.Module):
    def __init__(self, vocab: int = 512, d: int = 256, n_layer: int = 4, n_head: int = 8, t: int = 128):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(t, d)
        self.blocks = nn.ModuleList(_Block(d, n_head) for _ in range(n_layer))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))


class _ToyEnergy(nn.Module):
    """Radial-basis message passing with conservative forces (autograd.grad inside forward)."""

    def __init__(self, width: int = 64, n_layers: int = 3, n_rbf: int = 16) -> None:
        super().__init__()
        self.emb = nn.Embedding(19, width)
        self.rbf = nn.ModuleList(nn.Linear(n_rbf, width) for _ in range(n_layers))
        self.upd = nn.ModuleList(_mlp(width, 1, width)[:-1] for _ in range(n_layers))
        self.out = _mlp(width, 1, width)
        self.register_buffer("centers", torch.linspace(0.0, 3.0, n_rbf))

    def forward(self, graph):  # noqa: ANN001
        pos = graph.positions.detach().requires_grad_(True)
        src, dst = graph.edge_index
        d = (pos[src] - pos[dst]).norm(dim=-1, keepdim=True)
        basis = torch.exp(-4.0 * (d - self.centers) ** 2)
        h = self.emb(graph.atomic_numbers)
        for rbf, upd in zip(self.rbf, self.upd):
            m = rbf(basis) * h[src]
            h = h + upd(torch.zeros_like(h).index_add_(0, dst, m))
        e = self.out(h).squeeze(-1)
        energy = e.new_zeros(graph.n_graphs).index_add(0, graph.batch, e)
        (g,) = torch.autograd.grad(energy.sum(), pos, create_graph=self.training)
        return energy, -g


class _OpCounter(TorchDispatchMode):
    """Counts dispatched aten ops (to express the overhead per op)."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        self.n += 1
        return func(*args, **(kwargs or {}))


def _n_ops(fn) -> int:  # noqa: ANN001
    with _OpCounter() as c:
        fn()
    return c.n


def _time_pair(plain, counted, repeats: int) -> dict:
    plain()  # warm-up (allocations, lazy imports, op classification caches)
    counted()
    tp, tc, cp, cc = [], [], [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        plain()
        t1, c1 = time.perf_counter(), time.process_time()
        counted()
        t2, c2 = time.perf_counter(), time.process_time()
        tp.append(t1 - t0)
        tc.append(t2 - t1)
        cp.append(c1 - c0)
        cc.append(c2 - c1)
    return {
        "plain_ms": 1e3 * statistics.median(tp),
        "count_ms": 1e3 * statistics.median(tc),
        "ratio_median": statistics.median(tc) / statistics.median(tp),
        "ratio_min": min(tc) / min(tp),
        # CPU time of this process: less sensitive to being descheduled on a shared machine
        "plain_cpu_ms": 1e3 * statistics.median(cp),
        "count_cpu_ms": 1e3 * statistics.median(cc),
        "ratio_cpu_median": statistics.median(cc) / max(1e-9, statistics.median(cp)),
    }


def _cases(quick: bool):
    from nnip_scaling.flops import probe_graphs

    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        big = _mlp(512, 4, 64)
        small = _mlp(64, 4, 16)
        gpt = _GPT()
        toy = _ToyEnergy()
    x_big = torch.randn(4096, 64, generator=g)
    x_small = torch.randn(256, 16, generator=g)
    idx = torch.randint(0, 512, (8, 128), generator=g)
    tgt = torch.randint(0, 512, (8, 128), generator=g)

    def gpt_loss(logits):
        return F.cross_entropy(logits.reshape(-1, 512), tgt.reshape(-1))

    def gpt_step():
        gpt_loss(gpt(idx)).backward()
        gpt.zero_grad(set_to_none=True)

    graph = probe_graphs((90,))[0].with_edges(3.0, 30)
    yield "mlp 4x512, batch 4096", (lambda: big(x_big)), (lambda: count_flops(big, x_big))
    yield "mlp 4x64, batch 256", (lambda: small(x_small)), (lambda: count_flops(small, x_small))
    yield "gpt d256 L4 T128 B8 fwd", (lambda: gpt(idx)), (lambda: count_flops(gpt, idx))
    yield ("gpt d256 L4 T128 B8 train step", gpt_step,
           lambda: count_flops(gpt, idx, backward=True, loss_fn=gpt_loss))
    yield (f"toy MPNN w64 + forces ({graph.n_atoms} atoms)", (lambda: toy(graph)),
           (lambda: count_flops(toy, graph)))
    try:
        from nnip_scaling.models import KINDS, build_model
    except ImportError:  # pragma: no cover - families not available
        return
    widths = {"unconstrained": 64, "directional": 32, "cartesian": 32, "spherical": 8}
    for kind in KINDS:
        try:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                model = build_model(kind, width=widths.get(kind, 16), depth=2 if quick else 4)
        except (ImportError, NotImplementedError, ValueError, TypeError) as err:
            print(f"# skipping {kind}: {err}", file=sys.stderr)
            continue
        gk = probe_graphs((90,))[0].with_edges(model.config.cutoff, model.config.max_neighbors)
        name = f"{kind} w{model.config.width} d{model.config.depth} ({gk.n_atoms} atoms, {gk.n_edges} edges)"
        yield name, (lambda m=model, gg=gk: m(gg)), (lambda m=model, gg=gk: count_flops(m, gg))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller models")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads (1 gives stabler ratios on an oversubscribed machine)")
    args = ap.parse_args()
    quick = args.quick or os.environ.get("NNIP_FAST") == "1"
    repeats = 3 if quick else 7
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    rows = []
    for name, plain, counted in _cases(quick):
        res = _time_pair(plain, counted, repeats)
        rep = counted()
        n_ops = _n_ops(plain)
        res.update(case=name, flops=rep.total, matmul=rep.matmul, n_aten_ops=n_ops,
                   overhead_us_per_op=1e3 * (res["count_cpu_ms"] - res["plain_cpu_ms"]) / max(1, n_ops),
                   n_ops_uncounted=sum(rep.uncounted.values()),
                   gflops_plain=rep.total / (res["plain_ms"] * 1e6) if res["plain_ms"] else math.nan)
        rows.append(res)
        print(f"{name:<58} plain {res['plain_ms']:9.2f} ms  counted {res['count_ms']:9.2f} ms  "
              f"x{res['ratio_median']:5.2f} (min x{res['ratio_min']:5.2f}, CPU "
              f"x{res['ratio_cpu_median']:5.2f})", flush=True)
    print()
    w = max(len(r["case"]) for r in rows)
    header = (f"| {'case':<{w}} | {'plain ms':>9} | {'counted ms':>10} | {'wall ratio':>10} | "
              f"{'min ratio':>9} | {'CPU ratio':>9} | {'aten ops':>8} | {'CPU us/op':>9} | "
              f"{'GFLOP':>9} | {'matmul %':>8} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['case']:<{w}} | {r['plain_ms']:9.2f} | {r['count_ms']:10.2f} | "
              f"{r['ratio_median']:9.2f}x | {r['ratio_min']:8.2f}x | {r['ratio_cpu_median']:8.2f}x | "
              f"{r['n_aten_ops']:8d} | {r['overhead_us_per_op']:9.1f} | {r['flops'] / 1e9:9.4f} | "
              f"{100 * r['matmul'] / max(1, r['flops']):7.1f}% |")
    out = {
        "benchmark": "bench_flops",
        "what": "count_flops time / plain call time (medians over interleaved repeats; wall and "
                "process CPU time)",
        "target": "overhead < 3x",
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cpu_count": os.cpu_count(), "loadavg_at_start": load0,
                    "loadavg_at_end": os.getloadavg()},
        "repeats": repeats,
        "quick": quick,
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
