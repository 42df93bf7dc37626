"""Triplet / quadruplet index construction: time and counts per atom vs atom count.

Graphs as in the paper's directional family (appendix D): embedding graph 10 Å / 50 neighbours,
quadruplet graph selected from it (default ``quadruplet_cutoff = cutoff``, 8 neighbours, GemNet-OC's
default). Systems at 0.1 atoms/Å^3 (liquid-like; organic molecules are similar):

- ``mol<n>``: a batch of 64 molecules of ``n`` atoms (each a compact blob), the training regime;
- ``cluster<n>``: one cluster of ``n`` atoms (cost per atom saturates once the cluster is larger than
  the cutoff sphere).

For each case: median wall time of ``radius_graph`` (reference), :func:`triplets`, :func:`quadruplets`
(explicit lists, skipped above 20M quadruplets) and ``build_directional_index`` (what the model
builds each forward), and per-atom counts of edges, triplets, quadruplets and the two pair sets the
model's factorised quadruplet sum actually touches (inner ``j -> k -> v`` and outer ``k -> v <- u``).

Second table: one quadruplet aggregation (``q = 16`` channels, 4 degrees) done the model's way
(factorised through the middle edge, :func:`quadruplet_aggregate`) vs. the explicit way (gather the
inner features per quadruplet, multiply by :func:`spherical_basis`, ``index_add`` into output edges),
forward and forward+backward, and their results' agreement.

Usage: python benchmarks/bench_triplets.py [--quick] [--threads N]
-> tables on stdout, JSON in benchmarks/results/bench_triplets.json
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

from nnip_scaling.geometry.angles import quadruplets, spherical_basis, triplets
from nnip_scaling.neighbors import radius_graph
from nnip_scaling.nn.directional import (
    DirectionalBasis,
    build_directional_index,
    quadruplet_aggregate,
)

RESULTS = Path(__file__).resolve().parent / "results" / "bench_triplets.json"
DENSITY = 0.1
CUTOFF, MAX_NEIGHBORS, Q_MAX_NEIGHBORS = 10.0, 50, 8
MAX_EXPLICIT_QUADS = 20_000_000


def make_case(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    if name.startswith("mol"):
        n = int(name.removeprefix("mol"))
        radius = (3 * n / (4 * torch.pi * DENSITY)) ** (1 / 3)
        pos = []
        for i in range(64):
            # uniform in a ball, rejecting pairs closer than 0.9 Å
            pts = torch.empty(0, 3)
            while pts.shape[0] < n:
                c = (torch.rand(3, generator=gen) * 2 - 1) * radius
                if c.norm() <= radius and (pts.shape[0] == 0 or float((pts - c).norm(dim=1).min()) > 0.9):
                    pts = torch.cat([pts, c[None]])
            pos.append(pts + 1000.0 * i)
        return torch.cat(pos), torch.arange(64).repeat_interleave(n)
    n = int(name.removeprefix("cluster"))
    side = (n / DENSITY) ** (1 / 3)
    return torch.rand(n, 3, generator=gen) * side, torch.zeros(n, dtype=torch.int64)


def timed(fn, repeats: int) -> tuple[float, object]:
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def index_case(name: str, repeats: int) -> dict:
    pos, batch = make_case(name)
    n = pos.shape[0]
    t_graph, ei = timed(lambda: radius_graph(pos, batch, CUTOFF, MAX_NEIGHBORS), repeats)
    length = (pos[ei[0]] - pos[ei[1]]).norm(dim=1)
    t_trip, trip = timed(lambda: triplets(ei, n), repeats)
    t_index, index = timed(
        lambda: build_directional_index(ei, length, n, quadruplet_cutoff=CUTOFF, quadruplet_max_neighbors=Q_MAX_NEIGHBORS),
        repeats,
    )
    q = index.quadruplets
    qei = ei[:, q.edge]
    inner = int(q.inner_mask.sum())
    outer = int(q.outer_mask.sum())
    # estimate before enumerating: sum over middle edges of inner x outer pairs
    # inner pairs of each middle edge k -> v times the embedding edges into v (outer pairs, before exclusions)
    est = int((q.inner_mask.sum(1).double() * torch.bincount(ei[1], minlength=n)[qei[1]].double()).sum())
    if est <= MAX_EXPLICIT_QUADS:
        t_quad, quad = timed(lambda: quadruplets(ei, qei, n), max(1, repeats // 2))
        n_quad = quad.n_quadruplets
    else:
        t_quad, n_quad = float("nan"), None
    return {
        "case": name,
        "n_atoms": n,
        "edges_per_atom": ei.shape[1] / n,
        "quad_edges_per_atom": q.n_edges / n,
        "triplets_per_atom": trip.n_triplets / n,
        "quadruplets_per_atom": None if n_quad is None else n_quad / n,
        "inner_pairs_per_atom": inner / n,
        "outer_pairs_per_atom": outer / n,
        "radius_graph_ms": 1e3 * t_graph,
        "triplets_ms": 1e3 * t_trip,
        "quadruplets_ms": 1e3 * t_quad,
        "directional_index_ms": 1e3 * t_index,
        "directional_index_us_per_atom": 1e6 * t_index / n,
    }


def aggregation_case(name: str, repeats: int, channels: int = 16) -> dict:
    pos, batch = make_case(name)
    pos = pos.double()
    n = pos.shape[0]
    ei = radius_graph(pos, batch, CUTOFF, MAX_NEIGHBORS)
    vec = pos[ei[0]] - pos[ei[1]]
    index = build_directional_index(ei, vec.norm(dim=1), n, quadruplet_max_neighbors=Q_MAX_NEIGHBORS)
    q = index.quadruplets
    basis = DirectionalBasis(CUTOFF, quadruplet_spherical=4).double()
    gen = torch.Generator().manual_seed(0)
    y0 = torch.randn(q.n_edges, index.max_degree, channels, generator=gen, dtype=torch.float64)
    quads = quadruplets(ei, ei[:, q.edge], n)
    slot = index.table.slot[quads.edge_jk]

    def factorised():
        v = vec.detach().requires_grad_()
        y = y0.clone().requires_grad_()
        return v, y, quadruplet_aggregate(y, basis(v, index))

    def explicit():
        v = vec.detach().requires_grad_()
        y = y0.clone().requires_grad_()
        feats_norm = basis(v, index).quadruplets.norm  # same normaliser, for a like-for-like result
        sb = spherical_basis(v[quads.edge_uv], v[q.edge[quads.edge_kv]], v[quads.edge_jk], n=4)
        contrib = sb[:, :, None] * y[quads.edge_kv, slot][:, None, :]
        out = torch.zeros(ei.shape[1], sb.shape[1], channels, dtype=y.dtype).index_add(0, quads.edge_uv, contrib)
        return v, y, out * feats_norm[:, None, None]

    rows = {}
    results = {}
    for label, fn in (("factorised", factorised), ("explicit", explicit)):
        t_fwd, (_, _, out) = timed(fn, repeats)
        results[label] = out.detach()

        def step(fn=fn):
            v, y, o = fn()
            torch.autograd.grad((o * o).sum(), (v, y))

        t_step, _ = timed(step, repeats)
        rows[label] = {"forward_ms": 1e3 * t_fwd, "forward_backward_ms": 1e3 * t_step}
    err = float((results["factorised"] - results["explicit"]).abs().max() / results["explicit"].abs().max())
    basis_ms, _ = timed(lambda: basis(vec, index), repeats)
    return {
        "case": name,
        "n_atoms": n,
        "quadruplets": quads.n_quadruplets,
        "channels": channels,
        "basis_features_ms": 1e3 * basis_ms,
        "factorised": rows["factorised"],
        "explicit": rows["explicit"],
        "speedup_forward": rows["explicit"]["forward_ms"] / rows["factorised"]["forward_ms"],
        "speedup_forward_backward": rows["explicit"]["forward_backward_ms"] / rows["factorised"]["forward_backward_ms"],
        "max_relative_difference": err,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    cases = ["mol10", "mol20", "mol30"] if args.quick else ["mol10", "mol20", "mol30", "mol50", "cluster500", "cluster2000", "cluster8000"]
    # the explicit side materialises [quadruplets, 10, 16] float64: keep it to ~1M quadruplets
    agg_cases = ["mol10"] if args.quick else ["mol10", "mol14"]
    index_rows = [index_case(c, args.repeats) for c in cases]
    agg_rows = [aggregation_case(c, args.repeats) for c in agg_cases]

    head = (f"{'case':<12}{'atoms':>7}{'edges/at':>9}{'qedges/at':>10}{'trip/at':>9}{'quad/at':>10}{'inner/at':>9}"
            f"{'outer/at':>9}{'graph ms':>10}{'trip ms':>9}{'quad ms':>9}{'index ms':>10}{'us/atom':>9}")
    print("Index construction (median of repeats; 'index' = build_directional_index, what the model runs)")
    print(head)
    print("-" * len(head))
    for r in index_rows:
        qa = "-" if r["quadruplets_per_atom"] is None else f"{r['quadruplets_per_atom']:.0f}"
        print(f"{r['case']:<12}{r['n_atoms']:>7}{r['edges_per_atom']:>9.1f}{r['quad_edges_per_atom']:>10.1f}"
              f"{r['triplets_per_atom']:>9.0f}{qa:>10}{r['inner_pairs_per_atom']:>9.0f}{r['outer_pairs_per_atom']:>9.0f}"
              f"{r['radius_graph_ms']:>10.1f}{r['triplets_ms']:>9.1f}{r['quadruplets_ms']:>9.1f}"
              f"{r['directional_index_ms']:>10.1f}{r['directional_index_us_per_atom']:>9.1f}")
    print()
    print("Quadruplet aggregation, 16 channels, l < 4 (float64): factorised (model) vs explicit quadruplet list")
    head = (f"{'case':<8}{'atoms':>7}{'quads':>11}{'fact fwd ms':>12}{'expl fwd ms':>12}{'speed-up':>9}"
            f"{'fact f+b ms':>12}{'expl f+b ms':>12}{'speed-up':>9}{'max rel diff':>13}")
    print(head)
    print("-" * len(head))
    for r in agg_rows:
        print(f"{r['case']:<8}{r['n_atoms']:>7}{r['quadruplets']:>11,}{r['factorised']['forward_ms']:>12.1f}"
              f"{r['explicit']['forward_ms']:>12.1f}{r['speedup_forward']:>9.1f}"
              f"{r['factorised']['forward_backward_ms']:>12.1f}{r['explicit']['forward_backward_ms']:>12.1f}"
              f"{r['speedup_forward_backward']:>9.1f}{r['max_relative_difference']:>13.1e}")
    meta = {
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "graphs": f"cutoff {CUTOFF} Å, {MAX_NEIGHBORS} neighbours; quadruplet graph {Q_MAX_NEIGHBORS} neighbours; "
        f"density {DENSITY} atoms/Å^3",
    }
    print(f"threads={args.threads}, load average before/after: {load_before} / {meta['loadavg_after']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "index": index_rows, "aggregation": agg_rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
