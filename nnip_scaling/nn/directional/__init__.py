r"""Directional message passing: the GemNet-OC-style block (paper section 2.1 item 2, appendix C.2).

Messages live on edges :math:`m_{uv}` (edge ``u -> v``) next to atom embeddings :math:`h_v`; a block
updates both from E(3)-invariant geometry only -- distances, bond angles :math:`\varphi_{uvk}` of
triplets ``k -> v <- u`` and dihedrals :math:`\omega_{uvkj}` of quadruplets ``j -> k -> v <- u`` (eq. 10,
GemNet-OC, Gasteiger et al. 2022). Equations, the normalisation we chose instead of GemNet-OC's
fitted scale factors, and the parameter count: docs/models/directional.md.

Modules (one concept each):

* ``index`` -- :func:`build_directional_index` (integers only);
* ``basis`` -- :class:`DirectionalBasis` and the :class:`DirectionalFeatures` it returns;
* ``aggregate`` -- :func:`triplet_aggregate`, :func:`quadruplet_aggregate` (parameter-free sums);
* ``interactions`` -- :class:`DirectionalBlock` and its triplet / quadruplet / atom-update parts;
* ``heads`` -- :class:`DirectionalOutput`, :class:`EdgeForceHead`, :class:`DirectionalEnergyHead`;
* ``layers`` -- :class:`Dense`, :class:`ResidualLayer`, the normalisations.

Pieces:

* :func:`build_directional_index` -- integer bookkeeping of a graph (neighbour tables, the quadruplet
  subgraph, reverse edges); no parameters, built once per forward (or by the caller).
* :class:`DirectionalBasis` -- distances and angles -> normalised radial / circular / spherical bases
  and their (block-shared) embeddings, as a :class:`DirectionalFeatures`.
* :class:`DirectionalBlock` -- one interaction block: triplet and quadruplet interactions through
  bilinear layers, atom update, residual MLPs.
* :class:`DirectionalOutput` -- per-block readout of atom and edge features; :class:`EdgeForceHead` --
  direct forces :math:`F_v = \sum_u f_{uv}\,\hat r_{uv}` (equivariant).

**Layout.** Sums over triplets and quadruplets are batched matrix products in a padded per-atom layout
(``[n_atoms, max_degree, ...]``, :func:`~nnip_scaling.geometry.angles.neighbor_table`) instead of
scatters over explicit triplet lists: the input messages of atom ``v`` are gathered once and shared by
all its output edges. The quadruplet sum is *factorised* through the middle edge: with
:math:`\alpha = (\hat r_{uv}\cdot e_1) + i(\hat r_{uv}\cdot e_2)` and
:math:`\delta = (\hat r_{jk}\cdot e_1) + i(\hat r_{jk}\cdot e_2)` in any orthonormal frame
:math:`(e_1, e_2)` perpendicular to :math:`\hat r_{kv}`,
:math:`\sin^m\varphi_1\sin^m\varphi_2\cos(m\omega) = \mathrm{Re}(\alpha^m)\mathrm{Re}(\delta^m) +
\mathrm{Im}(\alpha^m)\mathrm{Im}(\delta^m)`, so the sum over ``j`` is done once per middle edge and
the sum over ``k`` once per output edge: cost :math:`O(\#\text{triplets})`, never
:math:`O(\#\text{quadruplets})`. The excluded ``j = u`` terms are subtracted explicitly. The result
equals the direct sum over :func:`~nnip_scaling.geometry.angles.quadruplets` with
:func:`~nnip_scaling.geometry.angles.spherical_basis` (tested); the frame is arbitrary (an axis
choice per middle edge) and cancels exactly.
"""

from __future__ import annotations

from nnip_scaling.nn.directional.aggregate import quadruplet_aggregate, triplet_aggregate
from nnip_scaling.nn.directional.basis import (
    DirectionalBasis,
    DirectionalFeatures,
    QuadrupletFeatures,
    radial_normalisation,
)
from nnip_scaling.nn.directional.heads import DirectionalEnergyHead, DirectionalOutput, EdgeForceHead
from nnip_scaling.nn.directional.index import DirectionalIndex, QuadrupletLayout, build_directional_index
from nnip_scaling.nn.directional.interactions import (
    AtomUpdate,
    DirectionalBlock,
    QuadrupletInteraction,
    TripletInteraction,
)
from nnip_scaling.nn.directional.layers import Dense, ResidualLayer, rms_normalise, soft_normalise
__all__ = [
    "AtomUpdate",
    "Dense",
    "DirectionalBasis",
    "DirectionalBlock",
    "DirectionalEnergyHead",
    "DirectionalFeatures",
    "DirectionalIndex",
    "DirectionalOutput",
    "EdgeForceHead",
    "QuadrupletFeatures",
    "QuadrupletInteraction",
    "QuadrupletLayout",
    "ResidualLayer",
    "TripletInteraction",
    "build_directional_index",
    "quadruplet_aggregate",
    "radial_normalisation",
    "rms_normalise",
    "soft_normalise",
    "triplet_aggregate",
]
