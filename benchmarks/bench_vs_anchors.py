"""Our families beside the field's reference implementations, in one process, interleaved.

Contenders (random weights, same batch, same neighbour list, fp32, direct forces):

* ``spherical``: our ``build_model("spherical", width=C, depth=12, l_max=4, m_max=2,
  hidden_channels=32, edge_channels=32, num_radial=64)`` against fairchem-core 2.24's
  ``eSCNMDBackbone`` (eSEN) with the same l_max / m_max / layers / hidden / edge channels / 64
  Gaussians, cutoff 6 Å, 30 neighbours, at ``C = --channels``.
* ``directional``: our ``build_model("directional", width=64, depth=4, ...)`` with GemNet-OC's OC20
  embedding sizes (triplet 64, quadruplet 32, spherical basis 32, bases 16, 128 Gaussians, 7
  circular degrees, quadruplet cap 8) against fairchem-core 1.10's ``GemNetOC`` (OC20 hyper-parameters
  at width 64, 4 blocks, cutoff 10 Å, 50 neighbours). Both sides build their triplet / quadruplet
  indices inside the timed call. GemNet-OC also runs its atom-edge / edge-atom / atom-atom
  interactions, which our block does not have (docs/models/directional.md).

The batch is the anchors' (``benchmarks/anchors/bench_anchors.py``): 32 random organic molecules,
735 atoms, seed 0; the radius graph is built once, outside the timings, and handed to both sides.

Protocol (a shared machine): one thread; the contenders alternate call by call (``--rounds`` rounds of
``--repeats`` calls each, after ``--warmup`` calls), medians over all calls; the 1-minute load, an fp32
GEMM rate and a small-matmul latency (``small_mm_ms``, ~0.1-0.3 ms on a free core) are logged with
every round. Quote the ratios of one run, never absolute numbers from different runs. Each call's
process CPU time is recorded next to its wall time: with one thread it excludes the time the process
waits for a core, so on an oversubscribed machine its ratio is the steadier one (both are reported).

* ``fwd``: inference (``no_grad``, eval mode), energy + forces.
* ``train``: train-mode forward + loss (mean E^2 + mean |F|^2) + backward to the parameters.
* ``--memory``: peak resident memory growth of one train step (``/proc/self/status`` VmHWM after
  resetting it through ``/proc/self/clear_refs``; Linux only), each contender measured alone.
* ``--compile``: the same timings with ``torch.compile`` (inductor; needs a C++ compiler), plus the
  number of graph breaks of our model's forward (``torch._dynamo.explain``).

Setting up the anchors (optional; the script skips the families whose anchors are missing):

    VENV=$HOME/anchor-venv bash benchmarks/anchors/setup_venv.sh   # ~5 min; +~25 min for GemNet-OC's
                                                                   # torch-scatter / torch-sparse builds
    OMP_NUM_THREADS=1 $HOME/anchor-venv/bin/python benchmarks/bench_vs_anchors.py

Our package is imported from this checkout, so nothing of ours needs installing into that venv.

Usage: python benchmarks/bench_vs_anchors.py [--families spherical,directional] [--channels 8,16,32]
    [--modes fwd,train] [--rounds R] [--repeats N] [--warmup W] [--memory] [--compile] [--out PATH]
-> table on stdout, JSON in benchmarks/results/bench_vs_anchors.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch._dynamo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # our package, from this checkout
sys.path.insert(0, str(HERE / "anchors"))  # the anchors' harness (batch, builders, yardsticks)

import bench_anchors as ba  # noqa: E402

from nnip_scaling import AtomicGraph  # noqa: E402
from nnip_scaling.models import build_model  # noqa: E402

RESULTS = HERE / "results" / "bench_vs_anchors.json"
INSTALL_HINT = (
    "anchor packages missing: build their venv with `VENV=<dir> bash benchmarks/anchors/setup_venv.sh` "
    "and run this script with <dir>/bin/python (GemNet-OC also needs torch-scatter and torch-sparse, "
    "compiled by the same script)"
)

SPHERICAL = dict(cutoff=6.0, max_neighbors=30)
DIRECTIONAL = dict(cutoff=10.0, max_neighbors=50)


# ----------------------------------------------------------------------------------- contenders
def our_spherical(channels: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("spherical", width=channels, depth=12, l_max=4, m_max=2, hidden_channels=32,
                       edge_channels=32, num_radial=64, **SPHERICAL)


def our_directional() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("directional", width=64, depth=4, num_radial=128, num_spherical=7, basis_dim=16,
                       triplet_dim=64, quadruplet_dim=32, sbf_dim=32, quadruplet_max_neighbors=8, **DIRECTIONAL)


def our_anchor(name: str, model: torch.nn.Module, cutoff: float, max_neighbors: int) -> ba.Anchor:
    """Our model behind the harness's interface, on the anchors' neighbour list."""

    def prepare(mols: ba.Molecules) -> AtomicGraph:
        ei, _ = ba.radius_graph(mols, cutoff, max_neighbors)
        pos = mols.pos.clone()
        return AtomicGraph(positions=pos, atomic_numbers=mols.z.clone(), batch=mols.batch.clone(),
                           n_graphs=mols.n_mols, edge_index=ei, edge_vec=pos[ei[0]] - pos[ei[1]],
                           cutoff=cutoff, max_neighbors=max_neighbors)

    def infer(g: AtomicGraph):
        model.eval()
        with torch.no_grad():
            out = model(g)
        return out.energy, out.forces

    def train_forward(g: AtomicGraph):
        model.train()
        out = model(g)
        return out.energy, out.forces

    return ba.Anchor(name, model, prepare, infer, train_forward)


def build_anchor(kind: str, **kw) -> ba.Anchor | None:
    try:
        return ba.build_anchor(kind, **kw)
    except ImportError as exc:
        print(f"  skipped {kind}: {exc}\n  {INSTALL_HINT}", flush=True)
        return None


# ----------------------------------------------------------------------------------- measuring
def yardsticks() -> dict:
    return dict(load1=os.getloadavg()[0], gemm_gflops=ba.gemm_gflops(), small_mm_ms=ba.small_mm_ms())


def _call(anchor: ba.Anchor, inputs, mode: str) -> Callable[[], object]:
    if mode == "fwd":
        return lambda: anchor.infer(inputs)

    def step():
        ba._zero_grad(anchor.model)
        anchor.train_step(inputs)

    return step


def interleaved(contenders: list[ba.Anchor], inputs: list, mode: str, *, rounds: int, repeats: int,
                warmup: int) -> dict:
    """Median seconds per call of each contender, the contenders alternating call by call."""
    calls = [_call(a, x, mode) for a, x in zip(contenders, inputs)]
    for fn in calls:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in contenders]
    cpu: list[list[float]] = [[] for _ in contenders]
    sticks = []
    for _ in range(rounds):
        sticks.append(yardsticks())
        for _ in range(repeats):
            for k, fn in enumerate(calls):
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
                cpu[k].append(time.process_time() - c0)
    sticks.append(yardsticks())
    for a in contenders:
        ba._zero_grad(a.model)
    return dict(
        median_s={a.name: statistics.median(t) for a, t in zip(contenders, times)},
        min_s={a.name: min(t) for a, t in zip(contenders, times)},
        median_cpu_s={a.name: statistics.median(t) for a, t in zip(contenders, cpu)},
        times_ms={a.name: [round(1e3 * v, 2) for v in t] for a, t in zip(contenders, times)},
        cpu_ms={a.name: [round(1e3 * v, 2) for v in t] for a, t in zip(contenders, cpu)},
        yardsticks=sticks,
    )


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def peak_memory_mb(fn: Callable[[], object]) -> float | None:
    """Growth of the peak resident set during ``fn()`` (MB), or ``None`` where /proc cannot do it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS
        before = _status_kb("VmRSS")
        fn()
        return (_status_kb("VmHWM") - before) / 1024.0
    except (OSError, KeyError):
        return None


def memory_in_subprocess(label: str, side: str, args) -> float | None:
    """Peak RSS growth of one train step of one contender, in a fresh process (an allocator that keeps
    freed pages would hide the second contender's peak if both ran in one process)."""
    import subprocess

    cmd = [sys.executable, __file__, "--_memory", f"{label}|{side}", "--threads", str(args.threads)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=True)
        return float(res.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as exc:
        print(f"  memory of {label} {side} failed: {exc}", flush=True)
        return None


def _memory_child(spec: str) -> None:
    label, side = spec.split("|")
    mols = ba.make_molecules(32, 15, 30, seed=0)
    args = argparse.Namespace(families=["spherical", "directional"], channels=[int(label.split("=")[1])]
                              if label.startswith("spherical") else [])
    for lab, make_ref, make_ours in cases(args):
        if lab == label:
            a = make_ref() if side == "anchor" else make_ours()
            assert a is not None
            a.model.float()
            x = a.prepare(mols)
            print(peak_memory_mb(lambda: a.train_step(x)))
            return
    raise SystemExit(f"unknown case {label}")


# ----------------------------------------------------------------------------------- cases
def cases(args) -> list[tuple[str, Callable[[], ba.Anchor | None], Callable[[], ba.Anchor]]]:
    out = []
    if "spherical" in args.families:
        for c in args.channels:
            out.append((f"spherical C={c}",
                        lambda c=c: build_anchor("esen", channels=c, layers=12),
                        lambda c=c: our_anchor("ours", our_spherical(c), **SPHERICAL)))
    if "directional" in args.families:
        out.append(("directional w=64",
                    lambda: build_anchor("gemnet_oc", width=64, num_blocks=4, **DIRECTIONAL),
                    lambda: our_anchor("ours", our_directional(), **DIRECTIONAL)))
    return out


def run_case(label: str, make_ref, make_ours, mols: ba.Molecules, args) -> dict | None:
    print(f"== {label}", flush=True)
    ref = make_ref()
    if ref is None:
        return None
    ref.model.float()
    ours = make_ours()
    contenders = [ref, ours]
    inputs = [a.prepare(mols) for a in contenders]
    row: dict = dict(label=label, anchor=ref.notes or ref.name, params={ref.name: ref.n_params(), "ours": ours.n_params()},
                     n_atoms=mols.n_atoms)
    for mode in args.modes:
        r = interleaved(contenders, inputs, mode, rounds=args.rounds, repeats=args.repeats, warmup=args.warmup)
        r["speedup"] = r["median_s"][ref.name] / r["median_s"]["ours"]
        r["speedup_cpu"] = r["median_cpu_s"][ref.name] / r["median_cpu_s"]["ours"]
        row[mode] = r
        print(f"  {mode:5s} {ref.name} {1e3 * r['median_s'][ref.name]:8.1f} ms   ours {1e3 * r['median_s']['ours']:8.1f} ms"
              f"   speed-up {r['speedup']:.2f}x (CPU time {r['speedup_cpu']:.2f}x)   load {r['yardsticks'][0]['load1']:.1f}"
              f" small-mm {r['yardsticks'][0]['small_mm_ms']:.2f}->{r['yardsticks'][-1]['small_mm_ms']:.2f} ms", flush=True)
    if args.memory:
        row["peak_train_mb"] = {ref.name: memory_in_subprocess(label, "anchor", args),
                                "ours": memory_in_subprocess(label, "ours", args)}
        print(f"  peak train-step memory growth (MB): {row['peak_train_mb']}", flush=True)
    if args.compile:
        row["compile"] = compiled_timings(contenders, inputs, args)
    return row


def compiled_timings(contenders: list[ba.Anchor], inputs: list, args) -> dict:
    """Inference and train step with ``torch.compile`` (inductor) applied alike to both sides' call
    functions (``infer`` / ``train_forward``: model, heads and graph code), same interleaving; the
    first calls (compilation) are reported as ``compile_s``."""
    out: dict = {"graph_breaks": {}}
    for a, x in zip(contenders, inputs):
        try:
            ex = torch._dynamo.explain(a.infer)(x)
            out["graph_breaks"][a.name] = dict(graphs=ex.graph_count, breaks=ex.graph_break_count,
                                               reasons=sorted({str(r.reason).splitlines()[0][:120] for r in ex.break_reasons}))
        except Exception as exc:  # noqa: BLE001 - report, do not abort the benchmark
            out["graph_breaks"][a.name] = f"{type(exc).__name__}: {exc}"[:300]
        torch._dynamo.reset()
    print(f"  graph breaks (inference): {out['graph_breaks']}", flush=True)
    compiled = [ba.Anchor(a.name, a.model, a.prepare, torch.compile(a.infer), torch.compile(a.train_forward))
                for a in contenders]
    for mode in args.modes:
        try:
            out.setdefault("compile_s", {})[mode] = {}
            for a, x in zip(compiled, inputs):
                t0 = time.perf_counter()
                _call(a, x, mode)()
                out["compile_s"][mode][a.name] = time.perf_counter() - t0
            r = interleaved(compiled, inputs, mode, rounds=args.rounds, repeats=args.repeats, warmup=args.warmup)
            (ref,) = [k for k in r["median_s"] if k != "ours"]
            r["speedup"] = r["median_s"][ref] / r["median_s"]["ours"]
            r["speedup_cpu"] = r["median_cpu_s"][ref] / r["median_cpu_s"]["ours"]
            out[mode] = r
            print(f"  compiled {mode:5s} {ref} {1e3 * r['median_s'][ref]:8.1f} ms   ours {1e3 * r['median_s']['ours']:8.1f} ms"
                  f"   speed-up {r['speedup']:.2f}x (CPU time {r['speedup_cpu']:.2f}x)   compile s {out['compile_s'][mode]}",
                  flush=True)
        except Exception as exc:  # noqa: BLE001
            out[mode] = f"{type(exc).__name__}: {exc}"[:300]
            print(f"  compiled {mode}: failed: {out[mode]}", flush=True)
    return out


# ----------------------------------------------------------------------------------- report
def table(rows: list[dict], modes: list[str]) -> str:
    lines = ["| case | mode | anchor ms | ours ms | anchor atoms/s | ours atoms/s | speed-up (wall) | speed-up (CPU time) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        for mode in modes:
            r = row[mode]
            (ref_name,) = [k for k in r["median_s"] if k != "ours"]
            ta, to = r["median_s"][ref_name], r["median_s"]["ours"]
            lines.append(f"| {row['label']} ({ref_name}) | {mode} | {1e3 * ta:.0f} | {1e3 * to:.0f} | "
                         f"{row['n_atoms'] / ta:.0f} | {row['n_atoms'] / to:.0f} | {r['speedup']:.2f}x | {r['speedup_cpu']:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="spherical,directional")
    ap.add_argument("--channels", default="8,16,32", help="spherical C values")
    ap.add_argument("--modes", default="fwd,train")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--_memory", default=None, help=argparse.SUPPRESS)  # child process of --memory
    args = ap.parse_args(argv)
    if args._memory:
        torch.set_num_threads(args.threads)
        _memory_child(args._memory)
        return []
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    args.channels = [int(c) for c in args.channels.split(",")]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    torch.set_num_threads(args.threads)
    mols = ba.make_molecules(32, 15, 30, seed=0)
    info = ba.machine_info()
    print(json.dumps(info), flush=True)
    rows = []
    cmd = "python benchmarks/bench_vs_anchors.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for label, make_ref, make_ours in cases(args):
        row = run_case(label, make_ref, make_ours, mols, args)
        if row is not None:
            rows.append(row)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "w") as fh:  # after every case: a partial run is kept
                json.dump(dict(command=cmd, info=info, args=vars(args), rows=rows), fh, indent=1)
    if rows:
        print("\n" + table(rows, args.modes))
        print(f"wrote {args.out}")
    else:
        print(f"nothing to compare: {INSTALL_HINT}")
    return rows


if __name__ == "__main__":
    main()
