"""κ of published architectures beside our four families: ``estimate_kappa`` through the adapters.

For every external model whose package imports here -- PyTorch Geometric ``SchNet`` and ``ViSNet``,
mace-torch ``ScaleShiftMACE``, fairchem-core 2.x eSEN (``eSCNMDBackbone`` + energy and direct force
heads), SchNetPack ``SchNet``/``PaiNN``/``SO3net`` -- three widths are built with random weights
(nothing downloaded) at the package's default hyper-parameters unless noted, and κ (forward FLOPs
per parameter per atom) is counted on the same probe batches as our families (the 90 built-in G2
molecules in nested batches of 8/32/90, or ``--probe gfn2``). Each model gets its probe edges at its
own cutoff and neighbour cap, built outside the count; the table gives the mean neighbours per atom
of those edges, because κ of a message-passing model grows with it. ``drift`` is
``max κ / min κ - 1`` across the three widths: a large drift means κ is not a constant of the
architecture over this range (docs/flops.md, "Caveats").

Packages that are missing or do not import are listed as skipped, with the reason.

Usage: python benchmarks/bench_kappa_zoo.py [--probe g2|gfn2] [--threads N] [--only NAME ...]
  -> table on stdout (markdown), JSON in benchmarks/results/bench_kappa_zoo_<probe>.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nnip_scaling.flops import KappaDriftWarning, estimate_kappa, family_kappa
from nnip_scaling.flops.kappa import probe_graphs

RESULTS = Path(__file__).resolve().parent / "results"  # bench_kappa_zoo_<probe>.json


def _version(package: str) -> str:
    from importlib.metadata import version

    try:
        return version(package)
    except Exception:  # noqa: BLE001
        return "?"


# ---------------------------------------------------------------------------------------------
# external models: name -> (pip package, width label, widths, factory width -> model, notes)


def _pyg_schnet(w: int) -> torch.nn.Module:
    from torch_geometric.nn.models import SchNet

    return SchNet(hidden_channels=w, num_filters=w)  # defaults: 6 blocks, 50 Gaussians, cutoff 10, cap 32


def _pyg_visnet(w: int) -> torch.nn.Module:
    from torch_geometric.nn.models import ViSNet

    return ViSNet(hidden_channels=w)  # defaults: lmax 1, 6 layers, 32 RBF, cutoff 5, cap 32


def _mace(c: int, z_table: list[int]) -> torch.nn.Module:
    from mace import modules  # before e3nn: mace sets torch.load up for e3nn 0.4.4

    from nnip_scaling.geometry._e3nn import e3nn_o3

    o3 = e3nn_o3()
    return modules.ScaleShiftMACE(
        r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=2, num_elements=len(z_table), hidden_irreps=o3.Irreps(f"{c}x0e+{c}x1o"),
        MLP_irreps=o3.Irreps("16x0e"), atomic_energies=np.zeros(len(z_table)), avg_num_neighbors=8.0,
        atomic_numbers=z_table, correlation=3, gate=torch.nn.functional.silu, radial_MLP=[64, 64, 64],
        atomic_inter_scale=1.0, atomic_inter_shift=0.0)


def _esen(c: int) -> torch.nn.Module:
    from fairchem.core.models.base import HydraModelV2
    from fairchem.core.models.uma.escn_md import Linear_Energy_Head, Linear_Force_Head, eSCNMDBackbone

    backbone = eSCNMDBackbone(
        max_num_elements=100, sphere_channels=c, lmax=4, mmax=2, otf_graph=False, max_neighbors=30, cutoff=6.0,
        edge_channels=32, distance_function="gaussian", num_distance_basis=64, direct_forces=True,
        regress_forces=True, num_layers=4, hidden_channels=32, norm_type="rms_norm_sh", act_type="gate",
        ff_type="grid", use_dataset_embedding=False, always_use_pbc=False)
    return HydraModelV2(backbone, {"energy": Linear_Energy_Head(backbone), "forces": Linear_Force_Head(backbone)})


def _schnetpack(representation: str) -> Callable[[int], torch.nn.Module]:
    def build(w: int) -> torch.nn.Module:
        import schnetpack as spk

        kwargs: dict[str, Any] = {"n_atom_basis": w, "n_interactions": 3,
                                  "radial_basis": spk.nn.GaussianRBF(n_rbf=20, cutoff=5.0),
                                  "cutoff_fn": spk.nn.CosineCutoff(5.0)}
        if representation == "SO3net":
            kwargs["lmax"] = 2
        rep = getattr(spk.representation, representation)(**kwargs)
        return spk.model.NeuralNetworkPotential(
            representation=rep, input_modules=[spk.atomistic.PairwiseDistances()],
            output_modules=[spk.atomistic.Atomwise(n_in=w, output_key="energy")])

    return build


def _external(z_table: list[int]) -> dict[str, tuple[str, str, str, list[int], Callable[[int], Any], str, Any]]:
    """name -> (import name, pip package, width label, widths, factory, notes, adapter)."""
    rows = {
        "PyG SchNet": ("torch_geometric", "torch-geometric", "hidden=filters", [32, 64, 128], _pyg_schnet,
                       "6 blocks, 50 Gaussians, cutoff 10, cap 32 (PyG defaults)"),
        "PyG ViSNet": ("torch_geometric", "torch-geometric", "hidden", [32, 64, 128], _pyg_visnet,
                       "lmax 1, 6 layers, 32 RBF, cutoff 5, cap 32 (PyG defaults)"),
        "MACE": ("mace", "mace-torch", "channels", [16, 32, 64], lambda c: _mace(c, z_table),
                 "ScaleShiftMACE, L=1 features, max_ell 3, correlation 3, 2 layers, r_max 5; energy only"),
        "eSEN (fairchem)": ("fairchem.core", "fairchem-core", "sphere_channels", [16, 32, 64], _esen,
                            "eSCNMDBackbone lmax 4, mmax 2, 4 layers, cutoff 6, cap 30; direct forces"),
        "SchNetPack SchNet": ("schnetpack", "schnetpack", "n_atom_basis", [32, 64, 128], _schnetpack("SchNet"),
                              "3 interactions, 20 Gaussians, cutoff 5"),
        "SchNetPack PaiNN": ("schnetpack", "schnetpack", "n_atom_basis", [32, 64, 128], _schnetpack("PaiNN"),
                             "3 interactions, 20 Gaussians, cutoff 5"),
        "SchNetPack SO3net": ("schnetpack", "schnetpack", "n_atom_basis", [32, 64, 128], _schnetpack("SO3net"),
                              "3 interactions, 20 Gaussians, cutoff 5, lmax 2"),
    }
    rows = {name: (*row, None) for name, row in rows.items()}
    mace = rows["MACE"]
    rows["MACE + forces"] = (*mace[:5], "as MACE, with its autograd forces counted (compute_force=True)",
                             lambda: _adapter("mace", compute_force=True))
    return rows


def _adapter(name: str, **options: Any) -> Any:
    from nnip_scaling.flops.adapters import get_adapter

    return get_adapter(name, **options)


def _importable(module: str) -> str | None:
    """``None`` when ``module`` imports, else the reason."""
    try:
        __import__(module)
        return None
    except Exception as err:  # noqa: BLE001 - an installed package that fails to import is skipped too
        return f"{type(err).__name__}: {err}"[:160]


def _row(name: str, package: str, label: str, est: Any, notes: str) -> dict[str, Any]:
    return {
        "model": name, "package": package, "version": _version(package), "width_label": label,
        "sizes": [{"width": r.width, "n_params": r.n_params, "flops_per_atom": r.flops_per_atom, "kappa": r.kappa}
                  for r in est.per_size],
        "kappa_fit": est.kappa, "drift": est.drift, "mean_neighbors": est.mean_neighbors,
        "cutoff": est.cutoff, "uncounted": dict(est.uncounted), "notes": notes,
    }


def _measure_external(names: list[str] | None, probe: str) -> tuple[list[dict[str, Any]], list[str]]:
    z_table = sorted(set(probe_graphs(source=probe)[-1].atomic_numbers.tolist()))
    rows, skipped = [], []
    for name, (module, package, label, widths, factory, notes, adapter) in _external(z_table).items():
        if names and name not in names:
            continue
        reason = _importable(module)
        if reason is not None:
            skipped.append(f"{name}: {package} not usable here ({reason})")
            continue
        t0 = time.perf_counter()
        torch.manual_seed(0)
        est = estimate_kappa(factory, widths=widths, probe=probe, adapter=None if adapter is None else adapter())
        rows.append(_row(name, package, label, est, notes))
        print(f"  {name}: kappa {[round(r.kappa, 2) for r in est.per_size]} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    return rows, skipped


def _measure_ours(names: list[str] | None, probe: str) -> list[dict[str, Any]]:
    from nnip_scaling.models.build import KINDS

    rows = []
    for kind in KINDS:
        name = f"nnip_scaling {kind}"
        if names and name not in names:
            continue
        t0 = time.perf_counter()
        fam = family_kappa(kind, probe=probe)
        rows.append(_row(name, "nnip_scaling", "width", fam.estimate,
                         f"paper ladder: depth {fam.depth}, cutoff {fam.cutoff}, cap {fam.max_neighbors}"))
        print(f"  {name}: kappa {[round(r.kappa, 2) for r in fam.rows]} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    out = ["| model | package | width | N | κ (FLOPs / parameter / atom) | neighbours/atom (cutoff) | drift |",
           "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        widths = "/".join(str(s["width"]) for s in r["sizes"])
        ns = " / ".join(f"{s['n_params']:,}" for s in r["sizes"])
        ks = " / ".join(f"{s['kappa']:.2f}" for s in r["sizes"])
        nb = "-" if r["mean_neighbors"] is None else f"{r['mean_neighbors']:.1f} ({r['cutoff']:g} Å)"
        pkg = r["package"] if r["package"] == "nnip_scaling" else f"{r['package']} {r['version']}"
        out.append(f"| {r['model']} | {pkg} | {r['width_label']} {widths} | {ns} | {ks} | {nb} | "
                   f"{100 * r['drift']:.0f}% |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--probe", choices=("g2", "gfn2"), default="g2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME", help="model names to run (default: all)")
    ap.add_argument("--skip-ours", action="store_true", help="only the external models")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", KappaDriftWarning)  # the drift is a column of the table
    warnings.filterwarnings("ignore", category=UserWarning, module="torch.jit")
    rows, skipped = _measure_external(args.only, args.probe)
    if not args.skip_ours:
        rows += _measure_ours(args.only, args.probe)
    print()
    print(_table(rows))
    for s in skipped:
        print(f"skipped: {s}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"bench_kappa_zoo_{args.probe}.json", "w", encoding="utf-8") as fh:
        json.dump({"command": "python benchmarks/bench_kappa_zoo.py " + " ".join(
                   f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False)),
                   "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                   "probe": args.probe, "rows": rows, "skipped": skipped}, fh, indent=2)
        fh.write("\n")


if __name__ == "__main__":
    main()
