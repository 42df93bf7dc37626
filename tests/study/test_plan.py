"""The plan: fixed token budgets need no timing, epochs follow D_max, options reach train()."""

from __future__ import annotations

import dataclasses
import json

import pytest

from nnip_scaling.study import FamilySpec, StudyConfig
from nnip_scaling.study.plan import PLAN_NAME, load_plan, plan_runs, save_plan, tasks_of


class _Data:
    """Stands in for a MoleculeDataset in the planner: 100 configurations of 10 atoms."""

    def __len__(self) -> int:
        return 100

    n_atoms_total = 1000


def _config(**kw) -> StudyConfig:
    fam = FamilySpec(kind="cartesian", widths=(4, 8), depth=1, tokens=2500)
    return StudyConfig(families=(fam,), batch_size=10, evals_per_run=5, **kw)


def test_fixed_tokens_plan_and_tasks(monkeypatch):
    import nnip_scaling.study.plan as plan_mod

    monkeypatch.setattr(plan_mod, "_seconds_per_atom", lambda *a, **k: 1e-3)
    cfg = _config(epochs=4, lr_rule="global", lr=0.05)
    plan = plan_runs(cfg, _Data(), _Data(), None, lambda s, w: None, seconds=60.0, workers=2)
    fam = plan["families"]["cartesian"]
    assert fam["tokens"] == 2500 and fam["epochs"] == 3  # 2500 atoms over 1000-atom epochs
    assert fam["minutes_cap"] is None  # a fixed budget is never cut by a time cap
    assert fam["eval_every"] == 250 // 10 // 5
    tasks = tasks_of(cfg, plan, {"cartesian": {4: 1.0, 8: 2.0}}, threads=1)
    assert {t.run_id for t in tasks} == {"cartesian-w4", "cartesian-w8"}
    t8 = next(t for t in tasks if t.width == 8)
    assert t8.kappa == 2.0 and t8.train["lr_rule"] == "global" and t8.train["lr"] == 0.05
    assert t8.train["augment"] is True and t8.train["base_width"] == 8 and "minutes" not in t8.train
    assert tasks[0].seconds >= tasks[1].seconds  # longest first


def test_budget_plan_caps_tokens_and_epochs(monkeypatch):
    import nnip_scaling.study.plan as plan_mod

    monkeypatch.setattr(plan_mod, "_seconds_per_atom", lambda *a, **k: 1e-3)
    fam = FamilySpec(kind="cartesian", widths=(4, 8), depth=1)
    cfg = StudyConfig(families=(fam,), batch_size=10, epochs=1)
    plan = plan_runs(cfg, _Data(), _Data(), None, lambda s, w: None, seconds=1e6, workers=1)
    f = plan["families"]["cartesian"]
    assert f["tokens"] == int(0.98 * 1000) and f["epochs"] == 1  # one pass at most
    assert set(f["minutes_cap"]) == {"4", "8"}
    tiny = plan_runs(cfg, _Data(), _Data(), None, lambda s, w: None, seconds=0.0, workers=1)
    assert tiny["families"]["cartesian"]["tokens"] == 4 * 10 * 10  # never below four batches
    capped = plan_runs(dataclasses.replace(cfg, max_tokens=500), _Data(), _Data(), None, lambda s, w: None,
                       seconds=1e6, workers=1)
    assert capped["families"]["cartesian"]["tokens"] == 500


def test_plan_file_round_trip_and_version(tmp_path):
    plan = {"version": 2, "workers": 1, "families": {}}
    save_plan(tmp_path, plan)
    assert load_plan(tmp_path) == plan
    assert load_plan(tmp_path / "nowhere") == {}
    (tmp_path / PLAN_NAME).write_text(json.dumps({"families": {}}))
    with pytest.raises(ValueError, match="another version"):
        load_plan(tmp_path)
    (tmp_path / PLAN_NAME).write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_plan(tmp_path)


def test_bad_lr_rule_is_named():
    with pytest.raises(ValueError, match="lr_rule"):
        _config(lr_rule="muP")


def test_old_import_paths_still_work():
    from nnip_scaling import study
    from nnip_scaling.scaling import RunAnalysis
    from nnip_scaling.train import FamilyFit, StudyConfig as OldConfig, run_study as old_run_study

    assert OldConfig is study.StudyConfig and old_run_study is study.run_study and FamilyFit is RunAnalysis
