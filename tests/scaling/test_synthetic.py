"""The synthetic run-log generator used by tests, examples and benchmarks."""

from __future__ import annotations

import numpy as np
import pytest

from nnip_scaling.scaling import sum_power_law
from nnip_scaling.scaling.synthetic import synthetic_runs

LAW = dict(L_inf=0.01, A=50.0, B=500.0, alpha=0.4, beta=0.3)


def test_rows_follow_the_law_and_eq3():
    runs = synthetic_runs([1e5, 1e6, 1e7], D_max=1e8, fractions=[1.0, 0.5, 0.1], kappa=3.5,
                          flops_per_hour=1e14, arch="x", **LAW)
    assert len(runs) == 9 and len(np.unique(runs.run_id)) == 3
    np.testing.assert_allclose(runs.loss, sum_power_law(runs.N, runs.D, **LAW), rtol=1e-15)
    np.testing.assert_allclose(runs.flops, 3 * 3.5 * runs.N * runs.D, rtol=1e-15)
    np.testing.assert_allclose(runs.hours, runs.flops / 1e14, rtol=1e-15)
    # Fractions are sorted, the step column counts evaluations along each run.
    assert runs.tokens[:3].tolist() == [1e7, 5e7, 1e8] and runs.extra["step"][:3].tolist() == [1, 2, 3]
    assert set(runs.extra["arch"]) == {"x"}


def test_noise_is_seeded_and_run_noise_is_shared_along_a_run():
    a = synthetic_runs([1e5, 1e6], D_max=1e8, noise=0.02, seed=1, **LAW)
    b = synthetic_runs([1e5, 1e6], D_max=1e8, noise=0.02, seed=1, **LAW)
    np.testing.assert_array_equal(a.loss, b.loss)
    c = synthetic_runs([1e5, 1e6], D_max=1e8, run_noise=0.1, seed=1, **LAW)
    ratio = np.log(c.loss / sum_power_law(c.N, c.D, **LAW)).reshape(2, -1)
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), atol=1e-12)
    assert abs(ratio[0, 0] - ratio[1, 0]) > 1e-6


def test_bad_input():
    with pytest.raises(ValueError, match="fractions must lie in"):
        synthetic_runs([1e5], D_max=1e8, fractions=[0.5, 2.0], **LAW)
    with pytest.raises(ValueError, match=r"n_params must be positive"):
        synthetic_runs([0.0], D_max=1e8, **LAW)
    with pytest.raises(ValueError, match="noise must be in"):
        synthetic_runs([1e5], D_max=1e8, noise=-1.0, **LAW)
