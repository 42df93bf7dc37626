"""One message-passing layer: the SO(2) convolution (eSCN) vs an e3nn full tensor-product convolution.

Question: how much does rotating every edge onto +y (paper appendix C.4, eq. 15-22) save over the
Clebsch-Gordan tensor product of eq. 14, with the same irreps and channels?

Both layers map node features ``h [N, (l_max+1)**2, C]`` (degrees 0..l_max, C channels each) to the
same shape: per edge the source features are modulated per (degree, channel) by a radial MLP of the
distance, convolved with the edge direction, mixed over all C channels, and summed at the target.

- **SO(2)**: ``edge_wigner`` (Wigner-D rows of the edge frames) -> rotate -> ``SO2Linear`` (all
  ``m <= m_max``) -> rotate back -> scatter. ``m_max = l_max`` is exactly the full tensor product
  (tested in ``tests/nn/test_spherical.py``; it even covers spherical harmonics up to ``2 l_max``);
  ``m_max = 2`` is the eSEN setting of the paper.
- **e3nn TP**: ``e3nn.o3.FullyConnectedTensorProduct(C x (0e+..+Le), 1x(0e+..+Le), C x (0e+..+Le))``
  ("uvw": every path mixes all channels) of the source features with the spherical harmonics of the
  edge direction up to ``l_max`` (fewer paths than the SO(2) layer with ``m_max = l_max`` covers:
  the comparison favours e3nn), then scatter. All parities even so that every triangle-allowed path
  exists (SO(3) features, as in our model).

Timed: the layer alone (forward; forward + backward w.r.t. the node features and the weights) with the
edge geometry (Wigner rows / spherical harmonics) computed beforehand, as in a deep model where it is
shared by all layers; the geometry separately. Median of ``--repeats`` runs (at most 3 when one
forward + backward takes over 10 s), methods interleaved so that load from other processes hits them
alike. Batch: 32 "molecules" of ~20 atoms, each the union of two
built-in G2 molecules placed side by side (``builtin_molecules()`` has 3-14 atoms per molecule), edges
within 6 Å, at most 30 neighbours.

Usage: python benchmarks/bench_so2.py [--threads N] [--repeats R] [--quick] [--dtype float32|float64]
-> table on stdout, JSON in benchmarks/results/bench_so2.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.data.molecules import builtin_molecules
from nnip_scaling.geometry import gaussian_basis, spherical_harmonics
from nnip_scaling.nn.so2 import edge_wigner, from_edge_frame, so2_layout, to_edge_frame
from nnip_scaling.nn.spherical import RadialMLP, SO2Linear

RESULTS = Path(__file__).resolve().parent / "results" / "bench_so2.json"
N_MOLECULES = 32
CUTOFF, MAX_NEIGHBORS, N_RADIAL = 6.0, 30, 16


def make_batch(dtype: torch.dtype) -> AtomicGraph:
    """32 systems of ~20 atoms: each of the 32 largest built-in molecules next to a partner chosen to
    make ~20 atoms, shifted along x until no two atoms are closer than 2.5 Å (deterministic)."""
    mols = sorted(builtin_molecules(), key=lambda m: (-len(m.atomic_numbers), m.name))
    systems = []
    for i, a in enumerate(mols[:N_MOLECULES]):
        # partner: a molecule whose size brings the pair closest to 20 atoms (cycling through ties)
        gap = min(abs(20 - len(a.atomic_numbers) - len(m.atomic_numbers)) for m in mols)
        pool = [m for m in mols if abs(20 - len(a.atomic_numbers) - len(m.atomic_numbers)) == gap]
        b = pool[i % len(pool)]
        ra = a.positions - a.positions.mean(0)
        rb = b.positions - b.positions.mean(0)
        shift = 3.0
        while np.min(np.linalg.norm(ra[:, None] - (rb + [shift, 0, 0])[None], axis=-1)) < 2.5:
            shift += 0.25
        systems.append((np.concatenate([a.atomic_numbers, b.atomic_numbers]), np.concatenate([ra, rb + [shift, 0, 0]])))
    return AtomicGraph.from_molecules(systems, dtype=dtype).with_edges(CUTOFF, MAX_NEIGHBORS)


class SO2Conv(torch.nn.Module):
    """h[src] -> edge frame -> radial modulation per (l, |m|, c) -> SO2Linear C->C -> back -> sum."""

    def __init__(self, c: int, l_max: int, m_max: int) -> None:
        super().__init__()
        self.layout = so2_layout(l_max, m_max)
        self.c = c
        self.radial = RadialMLP([N_RADIAL, 32, self.layout.n_shared * c])
        self.linear = SO2Linear(c, c, l_max=l_max, m_max=m_max)

    def geometry(self, edge_vec: torch.Tensor) -> torch.Tensor:
        return edge_wigner(edge_vec, self.layout)

    def forward(self, h, edge_index, rbf, wigner):
        e = edge_index.shape[1]
        x = to_edge_frame(h.index_select(0, edge_index[0]), wigner)
        rad = self.radial(rbf).reshape(e, self.layout.n_shared, self.c)
        y = from_edge_frame(self.linear(x, rad), wigner)
        return h.new_zeros(h.shape).index_add_(0, edge_index[1], y)


class TPConv(torch.nn.Module):
    """h[src] modulated per (l, c) -> e3nn FullyConnectedTensorProduct with Y(r) -> sum."""

    def __init__(self, c: int, l_max: int) -> None:
        super().__init__()
        from e3nn import o3

        self.l_max, self.c = l_max, c
        irreps = o3.Irreps([(c, (l, 1)) for l in range(l_max + 1)])
        sh = o3.Irreps([(1, (l, 1)) for l in range(l_max + 1)])
        self.tp = o3.FullyConnectedTensorProduct(irreps, sh, irreps)
        self.radial = RadialMLP([N_RADIAL, 32, (l_max + 1) * c])
        deg = torch.tensor([l for l in range(l_max + 1) for _ in range(2 * l + 1)])
        self.register_buffer("deg", deg)

    def geometry(self, edge_vec: torch.Tensor) -> torch.Tensor:
        return spherical_harmonics(self.l_max, edge_vec)

    def forward(self, h, edge_index, rbf, sh):
        e = edge_index.shape[1]
        rad = self.radial(rbf).reshape(e, self.l_max + 1, self.c).index_select(1, self.deg)
        x = h.index_select(0, edge_index[0]) * rad  # [E, dim, C]
        # e3nn layout: per degree, channel-major
        flat = torch.cat([x[:, l * l : (l + 1) ** 2].transpose(1, 2).reshape(e, -1) for l in range(self.l_max + 1)], 1)
        out = self.tp(flat, sh)
        parts, off = [], 0
        for l in range(self.l_max + 1):
            n = self.c * (2 * l + 1)
            parts.append(out[:, off : off + n].reshape(e, self.c, 2 * l + 1).transpose(1, 2))
            off += n
        y = torch.cat(parts, 1)
        return h.new_zeros(h.shape).index_add_(0, edge_index[1], y)


def _time(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def bench_case(g: AtomicGraph, c: int, l_max: int, repeats: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    dtype = g.dtype
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(g.n_atoms, (l_max + 1) ** 2, c, generator=gen, dtype=dtype).to(device)
    ei, vec = g.edge_index.to(device), g.edge_vec.to(device)
    rbf = gaussian_basis(vec.norm(dim=-1), n=N_RADIAL, cutoff=CUTOFF)
    methods = {
        "so2_mmax_lmax": SO2Conv(c, l_max, l_max),
        "so2_mmax_2": SO2Conv(c, l_max, min(2, l_max)),
        "e3nn_tp": TPConv(c, l_max),
    }
    geo = {}
    for name, m in methods.items():
        m.to(device=device, dtype=dtype)
        geo[name] = m.geometry(vec)
    hh = h.clone().requires_grad_(True)

    def fwd(name):
        with torch.no_grad():
            methods[name](h, ei, rbf, geo[name])

    def fwd_bwd(name):
        out = methods[name](hh, ei, rbf, geo[name])
        out.pow(2).sum().backward()

    def geometry(name):
        with torch.no_grad():
            methods[name].geometry(vec)

    slowest = 0.0
    for name in methods:  # warm-up (e3nn compiles its kernels on first call)
        fwd(name)
        slowest = max(slowest, _time(lambda: fwd_bwd(name), device))
    if slowest > 10.0:  # keep the expensive cases (e3nn at l_max 6) to a few minutes
        repeats = min(repeats, 3)
    times = {name: {"forward": [], "forward_backward": [], "geometry": []} for name in methods}
    for _ in range(repeats):
        for name in methods:
            times[name]["forward"].append(_time(lambda: fwd(name), device))
            times[name]["forward_backward"].append(_time(lambda: fwd_bwd(name), device))
            times[name]["geometry"].append(_time(lambda: geometry(name), device))
    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in methods.items()}
    # the exact-equivalence sanity check (m_max = l_max reproduces a TP): rows orthonormal
    return {
        "l_max": l_max,
        "channels": c,
        "n_atoms": g.n_atoms,
        "n_edges": g.n_edges,
        "repeats": repeats,
        "median_seconds": med,
        "parameters": params,
        "speedup_forward": {n: med["e3nn_tp"]["forward"] / med[n]["forward"] for n in ("so2_mmax_lmax", "so2_mmax_2")},
        "speedup_forward_backward": {
            n: med["e3nn_tp"]["forward_backward"] / med[n]["forward_backward"] for n in ("so2_mmax_lmax", "so2_mmax_2")
        },
        "speedup_forward_with_geometry": {
            n: (med["e3nn_tp"]["forward"] + med["e3nn_tp"]["geometry"]) / (med[n]["forward"] + med[n]["geometry"])
            for n in ("so2_mmax_lmax", "so2_mmax_2")
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="l_max 2 and 4, C 16 only, 3 repeats")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    g = make_batch(dtype)
    cases = [(c, l) for c in (16, 32) for l in (2, 4, 6)]
    repeats = args.repeats
    if args.quick:
        cases, repeats = [(16, 2), (16, 4)], 3
    print(f"batch: {N_MOLECULES} systems, {g.n_atoms} atoms, {g.n_edges} edges; {args.dtype}, "
          f"{torch.get_num_threads()} threads, device {device}; median of {repeats}")
    print(f"{'l_max':>5} {'C':>3} | {'forward ms: SO2(m=L)  SO2(m=2)   e3nn':>36} | "
          f"{'fwd+bwd ms: SO2(m=L)  SO2(m=2)   e3nn':>37} | {'speed-up fwd / fwd+bwd (m=L)':>29} | {'(m=2)':>13}")
    results = []
    for c, l_max in cases:
        r = bench_case(g, c, l_max, repeats, device)
        results.append(r)
        m = r["median_seconds"]
        f = [1e3 * m[n]["forward"] for n in ("so2_mmax_lmax", "so2_mmax_2", "e3nn_tp")]
        b = [1e3 * m[n]["forward_backward"] for n in ("so2_mmax_lmax", "so2_mmax_2", "e3nn_tp")]
        sf, sb = r["speedup_forward"], r["speedup_forward_backward"]
        print(f"{l_max:>5} {c:>3} | {f[0]:>20.1f} {f[1]:>9.1f} {f[2]:>6.1f} | {b[0]:>21.1f} {b[1]:>9.1f} {b[2]:>6.1f} | "
              f"{sf['so2_mmax_lmax']:>14.1f}x / {sb['so2_mmax_lmax']:>5.1f}x | "
              f"{sf['so2_mmax_2']:>5.1f}x / {sb['so2_mmax_2']:>5.1f}x", flush=True)
    out = {
        "benchmark": "bench_so2",
        "description": "one layer: SO(2) convolution (m_max = l_max, exact; m_max = 2, eSEN) vs e3nn FullyConnectedTensorProduct",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
                    "threads": torch.get_num_threads(), "device": str(device), "torch": torch.__version__},
        "dtype": args.dtype,
        "repeats": repeats,
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
