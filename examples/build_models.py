"""Build the unconstrained MPNN and the multi-channel EGNN, count parameters, measure equivariance.

Prints (1) our parameter counts next to the paper's tables 3 and 4 for the ladder rungs, (2) the
relative symmetry errors of small random-weight models of both families on a batch of built-in
molecules, in float64: the cartesian family is exact to rounding under O(3), the unconstrained one
only under translations and permutations (the paper's negative control).

NNIP_FAST=1 (used by the test suite) shortens the ladder listing and uses one width per family.
"""

from __future__ import annotations

import os

import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.data.molecules import builtin_molecules
from nnip_scaling.models import build_model, ladder_comparison
from nnip_scaling.testing import equivariance_error

FAST = os.environ.get("NNIP_FAST") == "1"


def main() -> None:
    torch.manual_seed(0)
    for kind, table in (("unconstrained", "table 3"), ("cartesian", "table 4")):
        rows = ladder_comparison(kind)
        if FAST:
            rows = rows[:3] + rows[-1:]
        print(f"\n{kind} ladder vs paper {table}")
        print(f"{'depth':>5} {'width':>6} {'ours':>12} {'paper':>12} {'diff':>8}")
        for r in rows:
            print(f"{r.config.depth:>5} {r.config.width:>6} {r.params:>12,} {r.paper_params:>12,} "
                  f"{100 * r.relative_difference:>+7.2f}%")

    mols = builtin_molecules()[30:34]
    graph = AtomicGraph.from_molecules([m.as_tuple() for m in mols], dtype=torch.float64)
    print(f"\nequivariance errors on {graph.n_graphs} molecules ({graph.n_atoms} atoms), float64, random weights")
    widths = (8,) if FAST else (8, 32)
    for kind in ("unconstrained", "cartesian"):
        for width in widths:
            for forces in ("direct", "conservative"):
                model = build_model(kind, width, 3, dtype=torch.float64, forces=forces)
                rep = equivariance_error(model, graph, group="O3")
                print(f"{kind:>13} w={width:<3} {forces:<12} params={model.n_parameters:>7,}  "
                      f"rotation F {rep.rotation_forces:.1e}  reflection F {rep.reflection_forces:.1e}  "
                      f"translation F {rep.translation_forces:.1e}  permutation F {rep.atom_permutation_forces:.1e}")


if __name__ == "__main__":
    main()
