"""Message-passing blocks, embedding and output heads (one public block per module).

Blocks: :class:`UnconstrainedBlock` (paper C.1), :class:`CartesianVectorBlock` (C.3); the directional
(C.2) and spherical SO(2) (C.4) blocks are added by their modules.
"""

from nnip_scaling.nn._edges import MissingEdgesError
from nnip_scaling.nn.cartesian import CartesianVectorBlock
from nnip_scaling.nn.directional import DirectionalBlock
from nnip_scaling.nn.embedding import AtomEmbedding
from nnip_scaling.nn.heads import EnergyHead, MLPForceHead, VectorForceHead
from nnip_scaling.nn.mlp import MLP
from nnip_scaling.nn.spherical import SO2Block
from nnip_scaling.nn.unconstrained import UnconstrainedBlock

__all__ = [
    "AtomEmbedding",
    "CartesianVectorBlock",
    "DirectionalBlock",
    "EnergyHead",
    "MLPForceHead",
    "MLP",
    "MissingEdgesError",
    "SO2Block",
    "UnconstrainedBlock",
    "VectorForceHead",
]
