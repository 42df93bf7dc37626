"""Test kit shipped for users: symmetry checks and (with hypothesis) input strategies.

``from nnip_scaling.testing import assert_equivariant`` works with the core install;
``nnip_scaling.testing.strategies`` needs the ``test`` extra (hypothesis).
"""

from nnip_scaling.testing.equivariance import (
    CHECKS,
    GROUPS,
    EquivarianceReport,
    assert_equivariant,
    declared_group,
    default_tolerance,
    equivariance_error,
)

__all__ = ["CHECKS", "GROUPS", "EquivarianceReport", "assert_equivariant", "declared_group", "default_tolerance",
           "equivariance_error"]
