"""Energy conservation in NVE molecular dynamics, per family: the smooth form conserves energy, the
discontinuous form (the paper's mean over |N(v)|, or a binding neighbour cap) does not.

Setting (float64, conservative forces): a 7-atom molecule of the built-in set at 1000 K, cutoff 2.5 Å
(so that many pairs cross it), width 8, depth 2 (directional 1), random weights scaled to a realistic RMS force of
1 eV/Å ("trained-looking", ``scale_to_rms_force``), velocity Verlet with 0.1 fs for 100 steps. A
precondition asserts that the step is small against the model's fastest vibration (period > 50 steps).

Measured (float64): fastest periods 6.1 .. 47 fs; smooth forms largest single-step change
2.6e-5 .. 9.2e-4 eV, |drift| <= 1.0e-3 eV/atom/ps; discontinuous forms 3.5e-3 .. 0.58 eV (39x .. 630x
the smooth one). Bounds: smooth change < 1e-2 eV and |drift| < 1e-2 eV/atom/ps; discontinuous change
> 10x the smooth one (both asserted, so the test fails if smoothing stops working or if the run stops
crossing the cutoff).

The directional family uses 16 radial Gaussians here: with the default 128 on a 2.5 Å cutoff
(width 0.02 Å), random weights give a far stiffer surface (docs/models/smoothness.md, "directional").
"""

from __future__ import annotations

import pytest
import torch

from nnip_scaling import AtomicGraph
from nnip_scaling.data.molecules import builtin_molecules
from nnip_scaling.dynamics import atomic_masses, maxwell_boltzmann, velocity_verlet
from nnip_scaling.models import build_model
from nnip_scaling.models.smoothness import is_smooth
from nnip_scaling.testing.smoothness import fastest_vibration_period, scale_to_rms_force

pytestmark = pytest.mark.slow

TIMESTEP, STEPS, TEMPERATURE, CUTOFF = 0.1, 100, 1000.0, 2.5
MAX_JUMP, MAX_DRIFT, RATIO = 1e-2, 1e-2, 10.0

FORMS = {
    # kind: (options of both forms, options of the discontinuous form); the two heavy families are
    # made cheaper (l_max = 3; depth 1), which changes nothing of what is tested here
    "unconstrained": ({}, dict(aggregation="mean")),
    "cartesian": ({}, dict(aggregation="mean")),
    "spherical": (dict(l_max=3), dict(aggregation="mean")),
    "directional": (dict(num_radial=16, depth=1), dict(quadruplet_max_neighbors=1)),
}


def _molecule() -> AtomicGraph:
    mol = next(m for m in builtin_molecules() if len(m.as_tuple()[0]) == 7)
    z, x = mol.as_tuple()
    return AtomicGraph.from_arrays(torch.tensor(x, dtype=torch.float64), torch.tensor(z))


def _model(kind: str, depth: int = 2, **options):
    torch.manual_seed(0)
    return build_model(kind, 8, depth, cutoff=CUTOFF, forces="conservative", dtype=torch.float64, **options).eval()


@pytest.mark.parametrize("kind", list(FORMS))
def test_nve_conserves_energy_with_the_smooth_form_only(kind):
    graph = _molecule()
    common, discontinuous = FORMS[kind]
    smooth = _model(kind, **common)
    rough = _model(kind, **common, **discontinuous)
    assert is_smooth(smooth.config) and not is_smooth(rough.config, n_atoms=graph.n_atoms)
    v0 = maxwell_boltzmann(atomic_masses(graph.atomic_numbers), TEMPERATURE, generator=torch.Generator().manual_seed(0))

    smooth = scale_to_rms_force(smooth, graph, 1.0)
    assert fastest_vibration_period(smooth, graph) > 50 * TIMESTEP  # the step resolves every vibration
    good = velocity_verlet(smooth, graph, timestep=TIMESTEP, steps=STEPS, velocities=v0)
    bad = velocity_verlet(scale_to_rms_force(rough, graph, 1.0), graph, timestep=TIMESTEP, steps=STEPS, velocities=v0)

    assert good.max_jump < MAX_JUMP
    assert abs(good.drift_per_atom_per_ps) < MAX_DRIFT
    assert bad.max_jump > RATIO * good.max_jump
