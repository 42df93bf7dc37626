"""Geometry kernels: radial bases, envelope, spherical harmonics, Wigner-D, edge frames, rotations.

Pure functions (no ``nn.Module``, no hidden randomness). Conventions: docs/geometry.md.
"""

from nnip_scaling.geometry.radial import bessel_basis, gaussian_basis, polynomial_envelope
from nnip_scaling.geometry.rotations import (
    random_reflection,
    random_rotation,
    reflection,
    rotation_90,
    rotation_about_axis,
)
from nnip_scaling.geometry.spherical import (
    edge_frame,
    spherical_harmonics,
    wigner_D,
    wigner_D_block_diagonal,
    wigner_D_blocks,
)

__all__ = [
    "gaussian_basis",
    "bessel_basis",
    "polynomial_envelope",
    "spherical_harmonics",
    "wigner_D",
    "wigner_D_blocks",
    "wigner_D_block_diagonal",
    "edge_frame",
    "random_rotation",
    "random_reflection",
    "reflection",
    "rotation_about_axis",
    "rotation_90",
]

from nnip_scaling.geometry.angles import bond_angle, bond_angle_cos, circular_basis, dihedral_angle, quadruplets, spherical_basis, triplets  # noqa: E402

__all__ += ["triplets", "quadruplets", "bond_angle", "bond_angle_cos", "dihedral_angle", "circular_basis", "spherical_basis"]
