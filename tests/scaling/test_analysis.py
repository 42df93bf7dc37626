"""analyse_runs: per-family chain (frontier, sum law, allocation, consistency) with gates and warnings."""

from __future__ import annotations

import numpy as np
import pytest

from nnip_scaling.scaling import RunLog, analyse_runs, split_families
from nnip_scaling.scaling.synthetic import synthetic_runs

ESEN = dict(A=10**3.760, B=10**5.129, alpha=0.817, beta=0.753)
MPNN = dict(A=10**1.356, B=10**2.194, alpha=0.276, beta=0.311)


def _two_families(column: str = "kind") -> RunLog:
    a = synthetic_runs(np.geomspace(4e5, 4e6, 4), D_max=9.2e8, fractions=np.geomspace(0.02, 1, 12), **ESEN,
                       kappa=74.36, noise=0.003, flops_per_hour=5e15, seed=0)
    b = synthetic_runs(np.geomspace(4e5, 4e6, 4), D_max=9.2e8, fractions=np.geomspace(0.02, 1, 12), **MPNN,
                       kappa=2.33, noise=0.003, flops_per_hour=5e15, seed=1)
    extra = {"step": np.concatenate([a.extra["step"], b.extra["step"]]),
             column: np.array(["spherical"] * len(a) + ["unconstrained"] * len(b))}
    return RunLog(np.concatenate([np.char.add("s-", a.run_id), np.char.add("u-", b.run_id)]),
                  *(np.concatenate([getattr(a, c), getattr(b, c)]) for c in ("n_params", "tokens", "flops", "loss",
                                                                             "hours")), extra=extra)


def test_each_family_recovers_its_own_law():
    res = analyse_runs(_two_families(), n_bootstrap=30)
    assert list(res) == ["spherical", "unconstrained"]
    sph, unc = res["spherical"], res["unconstrained"]
    assert sph.sum_law.alpha == pytest.approx(0.817, abs=0.05) and sph.sum_law.beta == pytest.approx(0.753, abs=0.05)
    assert unc.sum_law.alpha == pytest.approx(0.276, abs=0.05) and unc.sum_law.beta == pytest.approx(0.311, abs=0.05)
    assert sph.kappa == pytest.approx(74.36) and "inferred" in sph.kappa_note
    assert sph.wider_wins.fraction == 1.0
    assert not sph.failed_gates, [str(g) for g in sph.failed_gates]
    assert sph.optimum.gamma_c == pytest.approx(0.817 * 0.753 / (0.817 + 0.753), abs=0.03)
    assert sph.frontier_hours is not None and sph.n_runs == 4
    assert res["unconstrained"].kind == "unconstrained"


def test_grouping_column_and_given_kappa():
    runs = _two_families("arch")
    assert [label for label, _ in split_families(runs)] == ["spherical", "unconstrained"]
    assert [label for label, _ in split_families(runs, by=None)] == ["all runs"]
    with pytest.raises(KeyError, match="kind"):
        split_families(runs, by="kind")
    res = analyse_runs(runs, kappa={"spherical": 70.0}, n_bootstrap=0)
    assert res["spherical"].kappa == 70.0 and res["spherical"].kappa_note == "given"
    assert res["unconstrained"].kappa == pytest.approx(2.33)


def test_consistency_compares_like_with_like():
    runs = _two_families().where(kind="spherical")
    same = analyse_runs(runs, n_bootstrap=0)["spherical"]
    assert "L_inf = 0" in same.consistency_note and "fixed in both" in same.consistency_note
    mixed = analyse_runs(runs, n_bootstrap=0, sum_L_inf="fit", frontier_L_inf=0.0)["spherical"]
    if mixed.sum_law.L_inf > 0:  # the fitted L_inf of this draw; the frontier is refitted with it
        assert "refitted" in mixed.consistency_note
    else:
        assert "fitted in" in mixed.consistency_note or "L_inf = 0" in mixed.consistency_note
    assert mixed.consistency is not None


def test_failed_gates_flag_the_numbers_they_invalidate():
    # larger models worse: the wider-wins gate fails and alpha (and what derives from it) is flagged
    runs = synthetic_runs([1e3, 2e3, 4e3], D_max=1e6, fractions=np.geomspace(0.05, 1, 8), A=1e-4, B=50.0,
                          alpha=0.3, beta=0.4, noise=0.0)
    worse = runs.with_loss(runs.loss * (runs.N / 1e3) ** 0.05)
    res = analyse_runs(worse, n_bootstrap=20)["all runs"]
    ww = res.wider_wins
    assert ww is not None and not ww.passed and ww.fraction == 0.0
    assert ww in res.failures("alpha") and ww in res.failures("a") and ww in res.failures("gamma_c_sum")
    assert ww not in res.failures("gamma_c")
    assert any("wider" in w for w in res.warnings)
    assert "FAILED" in str(res)


def test_bad_settings_are_named():
    runs = _two_families()
    with pytest.raises(ValueError, match="resample"):
        analyse_runs(runs, resample="bootstrap")
    with pytest.raises(ValueError, match="compute_unit"):
        analyse_runs(runs, compute_unit=0)
    with pytest.raises(TypeError, match="RunLog"):
        analyse_runs("runs.csv")
