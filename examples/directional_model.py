"""The directional (GemNet-OC-style) family: ladder vs table 6, triplets and quadruplets, exact O(3)
symmetry, and what the dihedral adds.

Prints (1) our parameter counts next to the paper's table 6 (with the default quadruplet interaction,
and without it with 83 elements, which reproduces the table exactly), (2) triplet and quadruplet
counts of a few molecules, (3) relative symmetry errors of random-weight models in float64 under
rotations, reflections, translations and permutations, with direct and conservative forces, and (4) a
dihedral scan of a four-atom chain: with a 1.6 Å cutoff only the quadruplet interaction can see the
torsion.

NNIP_FAST=1 (used by the test suite) uses fewer molecules and scan points.
"""

from __future__ import annotations

import dataclasses
import math
import os

import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.data.molecules import builtin_molecules
from nnip_scaling.geometry.angles import quadruplets, select_edges, triplets
from nnip_scaling.models import build_model, ladder_comparison
from nnip_scaling.neighbors import radius_graph
from nnip_scaling.testing import equivariance_error

FAST = os.environ.get("NNIP_FAST") == "1"


def ladder_table() -> None:
    print("directional ladder vs paper table 6 (depth 4, cutoff 10 Å, 50 neighbours)")
    print(f"{'w':>4} {'ours':>11} {'diff':>7} {'no quads, Z<=83':>16} {'paper':>11}")
    for r in ladder_comparison("directional"):
        cfg = {**dataclasses.asdict(r.config), "quadruplets": False, "max_z": 83}
        with torch.device("meta"):
            plain = build_model(**cfg).n_parameters
        print(f"{r.config.width:>4} {r.params:>11,} {100 * r.relative_difference:>+6.1f}% {plain:>16,} {r.paper_params:>11,}")


def counts(mols) -> None:
    print("\ntriplets and quadruplets (cutoff 10 Å / 50 neighbours; quadruplet graph: 8 nearest)")
    print(f"{'molecule':<14} {'atoms':>5} {'edges':>6} {'triplets':>9} {'quadruplets':>12}")
    for m in mols:
        pos = torch.tensor(m.positions, dtype=torch.float64)
        n = pos.shape[0]
        ei = radius_graph(pos, None, 10.0, 50)
        q_edges = select_edges(ei, (pos[ei[0]] - pos[ei[1]]).norm(dim=1), n, max_neighbors=8)
        t = triplets(ei, n).n_triplets
        q = quadruplets(ei, ei[:, q_edges], n).n_quadruplets
        print(f"{m.name:<14} {n:>5} {ei.shape[1]:>6} {t:>9,} {q:>12,}")


def symmetry(mols) -> None:
    graph = AtomicGraph.from_molecules([m.as_tuple() for m in mols], dtype=torch.float64)
    print(f"\nsymmetry errors on {graph.n_graphs} molecules ({graph.n_atoms} atoms), float64, random weights")
    for forces in ("direct", "conservative"):
        torch.manual_seed(0)
        model = build_model("directional", 16, 2, cutoff=6.0, max_neighbors=30, quadruplet_cutoff=5.0,
                            forces=forces, dtype=torch.float64)
        rep = equivariance_error(model, graph, group="O3", n_trials=1)
        print(f"{forces:<12} params={model.n_parameters:>8,}  rotation F {rep.rotation_forces:.1e}  "
              f"reflection F {rep.reflection_forces:.1e}  translation F {rep.translation_forces:.1e}  "
              f"permutation F {rep.atom_permutation_forces:.1e}  energy {max(rep.rotation_energy, rep.reflection_energy):.1e}")


def chain(omega: float) -> torch.Tensor:
    """u - v - k - j, bonds 1 Å, angles 120 degrees, dihedral omega."""
    phi = math.radians(120)
    u = torch.tensor([math.cos(phi), math.sin(phi), 0.0])
    k = torch.tensor([1.0, 0.0, 0.0])
    j = k + torch.tensor([-math.cos(phi), math.sin(phi) * math.cos(omega), math.sin(phi) * math.sin(omega)])
    return torch.stack([u, torch.zeros(3), k, j]).double()


def dihedral_scan() -> None:
    print("\nenergy of a 4-atom chain vs dihedral, cutoff 1.6 Å (bonded neighbours only), random weights")
    omegas = [0.0, math.pi / 2, math.pi] if FAST else [i * math.pi / 6 for i in range(7)]
    z = torch.tensor([6, 6, 6, 6])
    for quads in (True, False):
        torch.manual_seed(1)
        model = build_model("directional", 16, 2, cutoff=1.6, max_neighbors=None, quadruplets=quads, dtype=torch.float64)
        with torch.no_grad():
            es = [float(model(AtomicGraph.from_arrays(chain(w), z)).energy) for w in omegas]
        spread = max(es) - min(es)
        print(f"quadruplets={quads!s:<5} E(omega) = " + " ".join(f"{e:+.5f}" for e in es) + f"   spread {spread:.1e}")


def main() -> None:
    ladder_table()
    mols = {m.name: m for m in builtin_molecules()}
    names = ["H2O", "C2H2", "CH3OH", "C6H6"] if FAST else ["H2O", "C2H2", "CH3OH", "C6H6", "trans-butane", "isobutane"]
    counts([mols[n] for n in names])
    symmetry([mols[n] for n in (["H2O", "CH3OH", "C2H2"] if FAST else ["H2O", "CH3OH", "C2H2", "C6H6", "trans-butane"])])
    dihedral_scan()


if __name__ == "__main__":
    main()
