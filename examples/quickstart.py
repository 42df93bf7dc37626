"""Quickstart: build a batch of molecules, its radius graph, and check a tiny model's symmetry.

Run: python examples/quickstart.py
"""

import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.data import builtin_molecules
from nnip_scaling.ops import scatter_sum
from nnip_scaling.testing import equivariance_error

mols = builtin_molecules(8)  # 8 small G2 molecules shipped with the package
graph = AtomicGraph.from_molecules([m.as_tuple() for m in mols], dtype=torch.float64)
graph = graph.with_edges(cutoff=5.0, max_neighbors=30)  # edge_index [2, E], edge_vec [E, 3]
print(graph)
print("atoms per molecule:", graph.n_atoms_per_graph.tolist())
print("mean neighbours per atom:", graph.n_edges / graph.n_atoms)


class Energy:
    """E = sum over edges of exp(-|r_uv|), forces by autograd: an exactly invariant toy potential."""

    def __call__(self, g):
        pos = g.positions.detach().requires_grad_(True)
        g = g.with_positions(pos)
        e = scatter_sum(torch.exp(-g.edge_vec.norm(dim=1)), g.batch[g.edge_index[1]], g.n_graphs)
        forces = -torch.autograd.grad(e.sum(), pos)[0]
        return type("Out", (), {"energy": e.detach(), "forces": forces})()


print(equivariance_error(Energy(), graph, group="O3"))
