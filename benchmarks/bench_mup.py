"""μP learning-rate transfer: a learning-rate sweep at three widths per family.

For each family, three widths 2x apart (the middle one is the base width :math:`w_0`) are trained on the
built-in data for the same number of steps (same batches, same seed) at learning rates
:math:`\\eta^* = f \\cdot \\eta_0`, :math:`f = 2^k` on a grid, and the final validation loss (eq. 1, the
averaged schedule-free weights, a fixed validation subset) is recorded. The best factor per width is the
grid point with the lowest loss. Under a rule that transfers, the best factor should not move with the
width: the target is at most one grid step across the three widths.

``--rules mup,global`` runs both the μP rule (``lr_rule="mup"``, the default of ``train``) and the paper's
global rule (``lr_rule="global"``); the table then also shows, at every factor, whether the wider model
wins (the loss ordering by width), which is the diagnostic of docs/training.md ("μP").

The machine is shared and noisy: losses are deterministic for a given machine (one thread, fixed seeds),
timings are not reported.

Usage::

    python benchmarks/bench_mup.py                       # ~10-15 min on one core: table + JSON
    python benchmarks/bench_mup.py --rules mup,global --steps 300 --factors=-3,-2,-1,0,1,2
    python benchmarks/bench_mup.py --families cartesian --steps 40 --factors=-1,0,1   # smoke run
    python benchmarks/bench_mup.py --merge a.json b.json     # one table and JSON from per-family runs

JSON: benchmarks/results/bench_mup.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "bench_mup.json"

# family -> (widths, depth, options, eta_0): CPU-sized versions of the study's ladders, widths 2x apart;
# eta_0 is the centre of the grid (the unconstrained family needs larger rates to leave its initial plateau,
# docs/training.md).
FAMILIES = {
    "unconstrained": ((16, 32, 64), 2, {}, 2e-2),
    "directional": ((8, 16, 32), 1, dict(num_radial=32, basis_dim=8, triplet_dim=8, cutoff=6.0, max_neighbors=30,
                                         quadruplets=False), 1e-2),
    "cartesian": ((8, 16, 32), 2, dict(n_radial=64), 1e-2),
    "spherical": ((4, 8, 16), 2, dict(l_max=2, m_max=2, hidden_channels=8, num_radial=32), 1e-2),
}


def run_one(kind: str, width: int, depth: int, options: dict, *, base_width: int, eta0: float, factor: float,
            rule: str, data: tuple, args: argparse.Namespace) -> dict:
    import torch

    from nnip_scaling.models import build_model
    from nnip_scaling.train import NonFiniteLossError, train

    train_ds, val_ds, normaliser = data
    torch.manual_seed(args.seed)
    model = build_model(kind, width, depth, **options)
    lr = eta0 * factor
    t0 = time.perf_counter()
    try:
        res = train(model, train_ds, val_ds, steps=args.steps, batch_size=args.batch_size, lr=lr,
                    base_width=base_width, lr_rule=rule, warmup_steps=args.warmup, kappa=1.0,
                    eval_every=args.eval_every, normaliser=normaliser, progress=False, seed=args.seed)
        curve = [(r.step, r.loss) for r in res.rows]
        loss = res.final_loss
    except NonFiniteLossError:
        curve, loss = [], math.inf
    return {"kind": kind, "width": width, "depth": depth, "n_params": model.n_parameters, "rule": rule,
            "factor": factor, "lr": lr, "loss": loss, "curve": curve, "seconds": time.perf_counter() - t0}


def best_factors(rows: list[dict], widths: tuple[int, ...]) -> dict[int, float]:
    out = {}
    for w in widths:
        mine = [r for r in rows if r["width"] == w and math.isfinite(r["loss"])]
        out[w] = min(mine, key=lambda r: r["loss"])["factor"] if mine else math.nan
    return out


def summarise(kind: str, rule: str, rows: list[dict], widths: tuple[int, ...], factors: list[float],
              eta0: float) -> dict:
    best = best_factors(rows, widths)
    steps = [math.log2(best[w]) for w in widths if math.isfinite(best[w])]
    spread = max(steps) - min(steps) if steps else math.nan
    at_edge = [w for w in widths if best[w] in (min(factors), max(factors))]
    wins = []
    for f in factors:
        losses = [next((r["loss"] for r in rows if r["width"] == w and r["factor"] == f), math.nan) for w in widths]
        wins.append(sum(b < a for a, b in zip(losses, losses[1:])))
    best_losses = {w: min((r["loss"] for r in rows if r["width"] == w), default=math.nan) for w in widths}
    return {"kind": kind, "rule": rule, "eta0": eta0, "best_factor": {str(w): best[w] for w in widths},
            "best_at_grid_edge": at_edge,
            "best_loss": {str(w): best_losses[w] for w in widths}, "grid_steps_moved": spread,
            "transfers": bool(spread <= 1), "wider_wins_per_factor": dict(zip(map(str, factors), wins))}


def print_table(kind: str, rule: str, rows: list[dict], widths: tuple[int, ...], factors: list[float],
                eta0: float) -> None:
    print(f"\n{kind}, lr_rule={rule!r}: final validation loss (rows: factor f of eta_0 = {eta0:g}; * best per width)")
    best = best_factors(rows, widths)
    print(f"{'f':>8} " + " ".join(f"{'w=' + str(w):>10}" for w in widths) + "   wider wins")
    for f in factors:
        cells, losses = [], []
        for w in widths:
            r = next(r for r in rows if r["width"] == w and r["factor"] == f)
            losses.append(r["loss"])
            cells.append(f"{r['loss']:>9.4f}{'*' if best[w] == f else ' '}")
        wins = sum(b < a for a, b in zip(losses, losses[1:]))
        print(f"{f:>8.4g} " + " ".join(cells) + f"   {wins}/{len(widths) - 1}")
    moved = [math.log2(best[w]) for w in widths if math.isfinite(best[w])]
    spread = max(moved) - min(moved) if moved else math.nan
    edge = [w for w in widths if best[w] in (min(factors), max(factors))]
    print(f"best factor per width: {[best[w] for w in widths]} -> moves {spread:g} grid step(s) "
          f"({'transfers' if spread <= 1 else 'does NOT transfer'}: target <= 1)"
          + (f"; best at the grid's edge for w={edge}: widen the grid (--factors)" if edge else ""))


def load_data(args: argparse.Namespace) -> tuple:
    import numpy as np

    from nnip_scaling.data import Normaliser, load_dataset

    train_ds = load_dataset("builtin", split="train")
    val = load_dataset("builtin", split="val")
    idx = np.random.default_rng(args.seed).permutation(len(val))[: args.val_molecules]
    val_ds = val.select(np.sort(idx))
    return train_ds, val_ds, Normaliser.fit(train_ds)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated families")
    ap.add_argument("--rules", default="mup", help="comma-separated lr rules: mup, global")
    ap.add_argument("--factors", default="-1,0,1,2", help="exponents k of the grid f = 2^k (comma-separated)")
    ap.add_argument("--steps", type=int, default=60, help="optimiser steps per run (default 60)")
    ap.add_argument("--eval-every", type=int, default=None, help="learning-curve points (default: end only)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None,
                    help="eta_0, the centre of the grid, for every family (default: per family, FAMILIES)")
    ap.add_argument("--warmup", type=int, default=0, help="warm-up steps of schedule-free AdamW")
    ap.add_argument("--val-molecules", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="merge the JSON of runs made separately (e.g. one process per family) into --out")
    args = ap.parse_args()
    args.eval_every = args.eval_every or args.steps
    return args


def merge(paths: list[str], out: Path) -> None:
    """One table and one JSON from several runs of this script (same settings, different families)."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    merged = {**parts[0], "runs": [r for p in parts for r in p["runs"]],
              "summary": [s for p in parts for s in p["summary"]],
              "families": {k: v for p in parts for k, v in p["families"].items()},
              "seconds": sum(p["seconds"] for p in parts), "merged_from": [str(p) for p in paths],
              "load_at_start": [p["load_at_start"] for p in parts]}
    factors = sorted({r["factor"] for r in merged["runs"]})
    for s in merged["summary"]:
        rows = [r for r in merged["runs"] if r["kind"] == s["kind"] and r["rule"] == s["rule"]]
        print_table(s["kind"], s["rule"], rows, tuple(merged["families"][s["kind"]]["widths"]), factors, s["eta0"])
    out.write_text(json.dumps(merged, indent=1))
    print(f"wrote {out}")


def main() -> None:
    args = parse_args()
    if args.merge:
        merge(args.merge, Path(args.out))
        return
    import torch

    torch.set_num_threads(args.threads)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    factors = [2.0 ** int(k) for k in args.factors.split(",")]
    data = load_data(args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"bench_mup: {args.steps} steps x batch {args.batch_size}, factors {factors} of eta_0, "
          f"{args.threads} thread(s), load {load:.1f}")
    t0 = time.perf_counter()
    runs, summary = [], []
    for kind in families:
        widths, depth, options, eta0 = FAMILIES[kind]
        eta0 = args.lr or eta0
        for rule in rules:
            rows = [run_one(kind, w, depth, options, base_width=widths[1], eta0=eta0, factor=f, rule=rule, data=data,
                            args=args) for f in factors for w in widths]
            runs += rows
            print_table(kind, rule, rows, widths, factors, eta0)
            summary.append(summarise(kind, rule, rows, widths, factors, eta0))
    seconds = time.perf_counter() - t0
    print(f"\n{seconds / 60:.1f} min wall")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "bench_mup", "machine": platform.machine(), "processor": platform.processor(),
        "python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
        "load_at_start": load, "seconds": seconds, "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "families": {k: {"widths": FAMILIES[k][0], "depth": FAMILIES[k][1], "options": FAMILIES[k][2],
                         "eta0": args.lr or FAMILIES[k][3]} for k in families},
        "summary": summary, "runs": runs,
    }, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
