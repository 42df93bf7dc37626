"""Counting overhead of ``count_flops`` relative to a plain call (target: under 3x).

Each case times the plain call and the same call under ``count_flops`` alternately (side by side, so
load from other processes hits both alike) and reports the ratio of medians (and of minima). The
dispatch-level counter costs a roughly constant few microseconds of Python per aten op, so the ratio
is large for models made of many tiny ops and close to 1 for models dominated by big kernels.

Cases: MLPs (large and small batches), a GPT-style transformer (forward and a training step), a
toy message-passing energy model with conservative forces, and whatever model families
``nnip_scaling.models.build_model`` can build (small widths, the 90 built-in molecules, edges
built beforehand).

Second part: κ per family across the paper's ladders scaled down (the rungs up to about 2M
parameters; the unconstrained family, whose κ is about 2, up to 8.5M), on both probe sets (the 90
built-in G2 molecules and the shipped GFN2-xTB molecules of up to 30 atoms): counted κ, κ predicted
from parameter placement, κ predicted at the neighbour cap, the paper's κ (``family_kappa``). It also
times the default ``nnip-scaling kappa`` run (first three rungs, g2 probe).

Usage: python benchmarks/bench_flops.py [--quick] [--threads N] [--skip-overhead] [--skip-kappa]
  -> tables on stdout, JSON in benchmarks/results/bench_flops.json (a skipped part keeps its
  previous results in the JSON).
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


# Rungs of the paper's ladders measured for κ (the ladders scaled down: see the module docstring).
KAPPA_LADDER_MAX_WIDTH = {"unconstrained": 835, "directional": 96, "cartesian": 120, "spherical": 16}


def _matmul_share(kind: str, width: int, r) -> float:  # noqa: ANN001
    """matmul subtotal / total of the forward pass on the largest probe batch."""
    from nnip_scaling.flops import probe_graphs
    from nnip_scaling.models import build_model, family_class

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(kind, width=width, depth=r.depth, cutoff=r.cutoff, max_neighbors=r.max_neighbors,
                            **dict(family_class(kind).ladder_options))
    g = probe_graphs((r.batch_sizes[-1],), source=r.probe)[0].with_edges(r.cutoff, r.max_neighbors)
    model(g)  # warm-up (constants cached on first use)
    rep = count_flops(model, g)
    return rep.matmul / rep.total


def _implied_neighbors(row, paper: float) -> float | None:  # noqa: ANN001
    """Mean neighbours at which this model's κ would equal the paper's, if the counted/predicted
    ratio stayed as measured: solve ``2 (P_node + P_edge k + P_graph g + P_other) / N = paper *
    (predicted/counted)`` for ``k`` (``None`` with per-triplet parameters or none per edge)."""
    p = row.placement
    if p.per_triplet > 0 or p.per_edge <= 0:
        return None
    rest = p.per_node + p.per_graph * p.n_graphs / p.n_atoms + p.other_per_atom
    return (paper * row.predicted_over_counted * p.n_params / 2.0 - rest) / p.per_edge


def _kappa_part(quick: bool) -> dict:
    from nnip_scaling.flops import family_kappa, kappa_table
    from nnip_scaling.flops.placement import DOMAINS
    from nnip_scaling.models import KINDS, paper_ladder

    families = []
    results = []
    # the default command: `nnip-scaling kappa` (first three rungs, g2 probe), timed
    t0, c0 = time.perf_counter(), time.process_time()
    default = [family_kappa(kind) for kind in KINDS]
    default_s, default_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    print(f"default `nnip-scaling kappa` (first three rungs, g2): {default_s:.1f} s wall, "
          f"{default_cpu_s:.1f} s CPU", flush=True)
    probes = ("g2",) if quick else ("g2", "gfn2")
    for probe in probes:
        for kind in KINDS:
            if quick:
                r = next(x for x in default if x.kind == kind)
            else:
                widths = [rg.width for rg in paper_ladder(kind) if rg.width <= KAPPA_LADDER_MAX_WIDTH[kind]]
                t0 = time.perf_counter()
                r = family_kappa(kind, widths, probe=probe)
                print(f"  {kind} ({probe}): {len(widths)} widths in {time.perf_counter() - t0:.1f} s",
                      flush=True)
            results.append(r)
            e = r.estimate
            top = r.rows[-1]
            matmul_share = _matmul_share(kind, top.width, r)
            implied = _implied_neighbors(top, r.paper_kappa)
            families.append({
                "kind": r.kind, "probe": r.probe, "depth": r.depth, "cutoff": r.cutoff,
                "max_neighbors": r.max_neighbors, "batch_sizes": list(r.batch_sizes),
                "kappa_fit": e.kappa, "drift": e.drift, "loglog_slope": e.loglog_slope,
                "mean_neighbors": e.mean_neighbors, "paper_kappa": r.paper_kappa,
                "uncounted_ops": dict(e.uncounted),
                "largest": {"width": top.width, "matmul_share": matmul_share,
                            "kappa_matmul_only": top.kappa * matmul_share,
                            "neighbors_implied_by_paper_kappa": implied},
                "rows": [{
                    "width": row.width, "n_params": row.n_params, "flops_per_atom": row.flops_per_atom,
                    "kappa": row.kappa, "kappa_predicted": row.kappa_predicted,
                    "predicted_over_counted": row.predicted_over_counted,
                    "kappa_predicted_at_cap": row.kappa_predicted_at_cap,
                    "placement": {**{f"per_{d}": getattr(row.placement, f"per_{d}") for d in DOMAINS},
                                  "other_per_atom": row.placement.other_per_atom,
                                  "free": row.placement.free},
                } for row in r.rows],
            })
    print()
    print(kappa_table(results))
    print()
    print("| family | probe | width | κ counted | matmul share | κ matmul only | κ pred @ cap | "
          "neighbours implied by the paper's κ | κ paper |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for f in families:
        top, big = f["rows"][-1], f["largest"]
        imp = big["neighbors_implied_by_paper_kappa"]
        print(f"| {f['kind']} | {f['probe']} | {top['width']} | {top['kappa']:.2f} | "
              f"{100 * big['matmul_share']:.1f}% | {big['kappa_matmul_only']:.2f} | "
              f"{top['kappa_predicted_at_cap']:.2f} | {'-' if imp is None else f'{imp:.1f}'} | "
              f"{f['paper_kappa']:.2f} |")
    return {"default_command_wall_s": default_s, "default_command_cpu_s": default_cpu_s,
            "families": families}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller models")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads (1 gives stabler ratios on an oversubscribed machine)")
    ap.add_argument("--skip-overhead", action="store_true", help="skip the counting-overhead part")
    ap.add_argument("--skip-kappa", action="store_true", help="skip the per-family kappa part")
    args = ap.parse_args()
    quick = args.quick or os.environ.get("NNIP_FAST") == "1"
    repeats = 3 if quick else 7
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if args.skip_overhead:
        out = {k: previous[k] for k in ("benchmark", "what", "target", "machine", "repeats", "quick", "rows")
               if k in previous}
    else:
        out = _overhead_part(quick, repeats, load0)
    if args.skip_kappa:
        if "kappa" in previous:
            out["kappa"] = previous["kappa"]
    else:
        t0 = os.getloadavg()
        kappa = _kappa_part(quick)
        kappa["machine"] = {"threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                            "loadavg_at_start": t0, "loadavg_at_end": os.getloadavg(),
                            "torch": torch.__version__}
        kappa["quick"] = quick
        out["kappa"] = kappa
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")
    return 0


def _overhead_part(quick: bool, repeats: int, load0: tuple) -> dict:
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
    return {
        "benchmark": "bench_flops",
        "what": "count_flops time / plain call time (medians over interleaved repeats; wall and "
                "process CPU time); kappa per family across the scaled-down ladders",
        "target": "overhead < 3x",
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cpu_count": os.cpu_count(), "loadavg_at_start": load0,
                    "loadavg_at_end": os.getloadavg()},
        "repeats": repeats,
        "quick": quick,
        "rows": rows,
    }


if __name__ == "__main__":
    raise SystemExit(main())
