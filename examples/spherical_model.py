"""The spherical (eSEN-style, SO(2)-sparsified) family: build, count, check exact equivariance.

Prints (1) our parameter counts next to the paper's table 5 for the whole ladder, (2) the relative
symmetry errors of small random-weight models in float64 for several ``l_max`` (``m_max = 2``
truncation included) with direct and conservative forces, (3) that a random roll of every edge frame
about its edge axis leaves the outputs unchanged, and (4) that edges exactly along +-y give finite
forces.

NNIP_FAST=1 (used by the test suite) checks fewer ``l_max`` values.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.data.molecules import builtin_molecules
from nnip_scaling.models import build_model, ladder_comparison
from nnip_scaling.testing import equivariance_error

FAST = os.environ.get("NNIP_FAST") == "1"


def main() -> None:
    torch.manual_seed(0)
    print("spherical ladder vs paper table 5 (depth 12, l_max 4, m_max 2, hidden 32)")
    print(f"{'C':>4} {'ours':>12} {'paper':>12} {'diff':>8}")
    for r in ladder_comparison("spherical"):
        print(f"{r.config.width:>4} {r.params:>12,} {r.paper_params:>12,} {100 * r.relative_difference:>+7.2f}%")

    mols = {m.name: m for m in builtin_molecules()}
    graph = AtomicGraph.from_molecules([mols[n].as_tuple() for n in ("H2O", "NH3", "CH3OH")], dtype=torch.float64)
    print(f"\nequivariance errors on {graph.n_graphs} molecules ({graph.n_atoms} atoms), float64, random weights")
    for l_max in (2, 4) if FAST else (1, 2, 4, 6):
        for forces in ("direct", "conservative"):
            model = build_model("spherical", 4, 2, l_max=l_max, forces=forces, dtype=torch.float64)
            rep = equivariance_error(model, graph, n_trials=1)
            print(f"l_max={l_max} m_max={model.config.m_max} {forces:<12} params={model.n_parameters:>7,}  "
                  f"rotation E {rep.rotation_energy:.1e}  F {rep.rotation_forces:.1e}  "
                  f"translation F {rep.translation_forces:.1e}  permutation F {rep.atom_permutation_forces:.1e}")

    model = build_model("spherical", 4, 2, dtype=torch.float64)
    rolled = build_model(**{**dataclasses.asdict(model.config), "edge_roll_seed": 0})
    rolled.load_state_dict(model.state_dict())
    with torch.no_grad():
        a, b = model(graph), rolled(graph)
    err = float((a.forces - b.forces).norm() / a.forces.norm())
    print(f"\nrandom roll of every edge frame about its axis: relative force change {err:.1e}")

    line = AtomicGraph.from_molecules([([6, 1, 8], [[0, 0, 0], [0, 1.1, 0], [0, -1.3, 0]])], dtype=torch.float64)
    for forces in ("direct", "conservative"):
        out = build_model("spherical", 4, 2, forces=forces, dtype=torch.float64)(line)
        print(f"atoms on the y axis ({forces}): forces finite = {bool(torch.isfinite(out.forces).all())}")


if __name__ == "__main__":
    main()
