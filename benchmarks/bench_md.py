"""Energy conservation and speed of NVE molecular dynamics for every family, smooth and paper forms.

System: trans-butane from the built-in set (14 atoms; 11 atom pairs between 3.5 and 4.5 Å, so pairs
cross the 4 Å cutoff during the run), float64, conservative forces, width 8, depth 2, random weights
scaled so that the RMS force at the start is 1 eV/Å (a "trained-looking" surface,
``nnip_scaling.testing.smoothness.scale_to_rms_force``), Maxwell-Boltzmann velocities at 800 K,
velocity Verlet (``nnip_scaling.dynamics.velocity_verlet``, the model rebuilds its edges every step).

Forms (docs/models/smoothness.md):

- smooth: ``build_model(kind, ..., forces="conservative")`` defaults: no neighbour caps, aggregation
  ``"soft_mean"`` (unconstrained, cartesian) or ``"sum"`` (spherical); the directional family is
  enveloped everywhere (its smooth form is "no caps");
- paper: the paper's forms with everything else equal: ``aggregation="mean"`` (eq. 8), neighbour cap
  30 (which cannot bind on 14 atoms); directional: the GemNet-OC caps 50 / 8 (the quadruplet cap of 8
  binds here);
- directional with ``num_radial=16`` (both forms): the default 128 Gaussians on a 4 Å cutoff are
  0.03 Å wide, and random weights make a very stiff surface (the diagnosis of issue 16).

Columns: fastest vibration period at the start (fs, mass-weighted Hessian), drift (least-squares slope
of the total energy, eV/atom/ps), spread and largest single-step change of the total energy (eV), MD
steps per second (one thread; a separate timing phase of ``--timing-steps`` steps per case, all cases
interleaved, ``--repeats`` rounds, median: load from other processes hits every case alike).

Usage: python benchmarks/bench_md.py [--steps 400] [--timestep 0.25] [--kinds ...] [--threads 1]
-> table on stdout, JSON in benchmarks/results/bench_md.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "bench_md.json"
MOLECULE = "trans-butane"
CUTOFF, WIDTH, DEPTH, TEMPERATURE, RMS_FORCE = 4.0, 8, 2, 800.0, 1.0

#: (row label, kind, options of the smooth form, options of the paper form)
CASES = [
    ("unconstrained", "unconstrained", {}, dict(aggregation="mean", max_neighbors=30)),
    ("cartesian", "cartesian", {}, dict(aggregation="mean", max_neighbors=30)),
    ("spherical", "spherical", {}, dict(aggregation="mean", max_neighbors=30)),
    ("directional", "directional", {}, dict(max_neighbors=50, quadruplet_max_neighbors=8)),
    ("directional R=16", "directional", dict(num_radial=16), dict(num_radial=16, max_neighbors=50, quadruplet_max_neighbors=8)),
]


def _molecule():
    from nnip_scaling import AtomicGraph
    from nnip_scaling.data.molecules import builtin_molecules

    mol = next(m for m in builtin_molecules() if m.name == MOLECULE)
    z, x = mol.as_tuple()
    return AtomicGraph.from_arrays(torch.tensor(x, dtype=torch.float64), torch.tensor(z))


def run_case(label: str, kind: str, options: dict, form: str, args, graph, velocities) -> dict:
    from nnip_scaling.dynamics import velocity_verlet
    from nnip_scaling.models import build_model
    from nnip_scaling.models.smoothness import discontinuities
    from nnip_scaling.testing.smoothness import fastest_vibration_period, scale_to_rms_force

    torch.manual_seed(0)
    model = build_model(kind, WIDTH, DEPTH, cutoff=CUTOFF, forces="conservative", dtype=torch.float64, **options).eval()
    scaled = scale_to_rms_force(model, graph, RMS_FORCE)
    period = fastest_vibration_period(scaled, graph) if form == "smooth" else float("nan")
    traj = velocity_verlet(scaled, graph, timestep=args.timestep, steps=args.steps, velocities=velocities)
    return scaled, dict(
        family=label,
        kind=kind,
        form=form,
        options=options,
        discontinuities=[str(d) for d in discontinuities(model.config, n_atoms=graph.n_atoms)],
        fastest_period_fs=period,
        drift_ev_per_atom_per_ps=traj.drift_per_atom_per_ps,
        spread_ev=traj.spread,
        max_jump_ev=traj.max_jump,
        kinetic_start_ev=float(traj.kinetic[0]),
        kinetic_end_ev=float(traj.kinetic[-1]),
    )


def time_cases(models: list, args, graph, velocities) -> list[float]:
    """Median MD steps/s of every model, the models interleaved in each of ``args.repeats`` rounds."""
    import statistics

    from nnip_scaling.dynamics import velocity_verlet

    rates: list[list[float]] = [[] for _ in models]
    for _ in range(args.repeats):
        for i, model in enumerate(models):
            traj = velocity_verlet(model, graph, timestep=args.timestep, steps=args.timing_steps, velocities=velocities)
            rates[i].append(traj.steps_per_second)
    return [statistics.median(r) for r in rates]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--timestep", type=float, default=0.25, help="fs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timing-steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", nargs="*", default=None, help="row labels to run (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from nnip_scaling.dynamics import atomic_masses, maxwell_boltzmann

    graph = _molecule()
    v0 = maxwell_boltzmann(atomic_masses(graph.atomic_numbers), TEMPERATURE, generator=torch.Generator().manual_seed(0))
    load0 = os.getloadavg()[0]
    rows, models = [], []
    for label, kind, smooth, paper in CASES:
        if args.kinds and label not in args.kinds:
            continue
        for form, options in (("smooth", smooth), ("paper", paper)):
            model, row = run_case(label, kind, options, form, args, graph, v0)
            rows.append(row)
            models.append(model)
            print(
                f"{label:18s} {form:6s} period {row['fastest_period_fs']:6.1f} fs  drift {row['drift_ev_per_atom_per_ps']:+9.2e} "
                f"eV/atom/ps  spread {row['spread_ev']:8.2e}  max jump {row['max_jump_ev']:8.2e} eV",
                flush=True,
            )
    load_timing = os.getloadavg()[0]
    for row, rate in zip(rows, time_cases(models, args, graph, v0)):
        row["steps_per_second"] = rate
        print(f"{row['family']:18s} {row['form']:6s} {rate:7.1f} MD steps/s")
    meta = dict(
        command=" ".join(["python", "benchmarks/bench_md.py", *sys.argv[1:]]),
        molecule=MOLECULE,
        n_atoms=graph.n_atoms,
        cutoff=CUTOFF,
        width=WIDTH,
        depth=DEPTH,
        temperature_k=TEMPERATURE,
        rms_force_ev_per_a=RMS_FORCE,
        timestep_fs=args.timestep,
        steps=args.steps,
        threads=args.threads,
        machine=f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
        load_start=load0,
        load_timing_start=load_timing,
        timing_steps=args.timing_steps,
        repeats=args.repeats,
        load_end=os.getloadavg()[0],
        torch=torch.__version__,
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"load {meta['load_start']:.1f} -> {meta['load_end']:.1f}; wrote {args.out}")


if __name__ == "__main__":
    main()
