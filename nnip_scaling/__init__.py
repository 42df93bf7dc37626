"""nnip_scaling: build and scale neural interatomic potentials.

Four message-passing families of increasing symmetry (unconstrained MPNN, directional GemNet-OC style,
Cartesian-vector MC-EGNN, SO(2)-sparsified spherical eSEN style), a FLOP counter with
``estimate_kappa``, and scaling-law fits (Pareto frontiers, power laws, the sum power law, compute-optimal
allocation with bootstrap confidence intervals). See *Scaling Laws and Symmetry, Evidence from Neural
Force Fields* and ``docs/``.
"""

from nnip_scaling._version import __version__
from nnip_scaling.graph import AtomicGraph, collate
from nnip_scaling.neighbors import radius_graph

__all__ = ["AtomicGraph", "collate", "radius_graph", "__version__"]
