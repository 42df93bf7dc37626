"""The training loop: learning, logs, exact resume, faults, options."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nnip_scaling.models import build_model
from nnip_scaling.scaling import load_runs
from nnip_scaling.train import (
    NonFiniteLossError,
    TrainConfig,
    evaluate,
    load_checkpoint,
    load_model,
    train,
)

HERE = Path(__file__).parent
FAST = dict(batch_size=8, lr=3e-3, kappa=2.0, progress=False)


def _model(kind="unconstrained", width=16, depth=2, **kw):
    torch.manual_seed(0)
    return build_model(kind, width, depth, **kw)


def _rows(result_or_path):
    rows = result_or_path.rows if hasattr(result_or_path, "rows") else result_or_path
    return [{k: v for k, v in dataclasses.asdict(r).items() if k != "hours"} for r in rows]


def test_loss_falls_on_builtin_data():
    from nnip_scaling.data import load_dataset

    tr = load_dataset("builtin", split="train")
    va = load_dataset("builtin", split="val").subset(0.03, seed=0)
    model = _model("cartesian", 8, 1, n_radial=64)  # ~2k parameters
    res = train(model, tr, va, steps=200, batch_size=8, lr=1e-2, eval_every=40, kappa=2.0, progress=False)
    first, last = res.rows[0].loss, res.rows[-1].loss
    assert res.steps == 200 and len(res.rows) == 5
    assert last < 0.8 * first, [r.loss for r in res.rows]
    assert res.rows[-1].force_loss < 0.8 * res.rows[0].force_loss


def test_log_rows_and_run_log_format(toy, tmp_path):
    tr, va = toy
    model = _model()
    res = train(model, tr, va, steps=12, eval_every=4, out_dir=tmp_path, **{**FAST, "kappa": None})
    assert [r.step for r in res.rows] == [4, 8, 12]
    log = load_runs(tmp_path / "log.csv")
    assert len(log) == 3
    assert set(log.columns) >= {"run_id", "n_params", "tokens", "flops", "loss", "hours", "kind", "width",
                                "depth", "step", "flops_measured", "energy_loss", "force_loss"}
    n = model.n_parameters
    assert np.all(log.n_params == n) and list(log.extra["kind"]) == ["unconstrained"] * 3
    assert res.kappa > 0
    # flops = 3 kappa N D exactly (eq. 3); the measured count is per atom times tokens
    np.testing.assert_allclose(log.flops, 3 * res.kappa * n * log.tokens, rtol=1e-12)
    np.testing.assert_allclose(log.extra["flops_measured"], res.flops_per_atom_measured * log.tokens, rtol=1e-12)
    # a training step costs more than a forward pass (backward ~ 2x forward)
    assert res.flops_per_atom_measured > 2 * res.kappa * n
    np.testing.assert_allclose(log.loss, log.extra["energy_loss"] + log.extra["force_loss"], rtol=1e-12)
    assert np.all(np.diff(log.tokens) > 0) and np.all(np.diff(log.hours) > 0)
    # tokens are atoms: 12 steps of 8 molecules
    assert res.tokens == int(log.tokens[-1]) and 12 * 8 * 2 <= res.tokens <= 12 * 8 * 12


def test_evaluates_averaged_weights_and_checkpoint_rebuilds_model(toy, tmp_path):
    tr, va = toy
    model = _model()
    res = train(model, tr, va, steps=10, eval_every=5, out_dir=tmp_path, **FAST)
    assert not model.training
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    # the schedule-free averaged weights x are what was evaluated, what the model holds, what was saved
    for k, v in model.state_dict().items():
        assert torch.equal(v, state["model_state"][k]), k
    from nnip_scaling.data import Normaliser

    norm = Normaliser.from_state_dict(state["normaliser"])
    ev = evaluate(model, va, normaliser=norm, batch_size=64)
    assert ev.loss == pytest.approx(res.final_loss, rel=1e-6)
    rebuilt, norm2 = load_model(tmp_path / "checkpoint.pt")
    assert evaluate(rebuilt, va, normaliser=norm2).loss == pytest.approx(ev.loss, rel=1e-12)
    # the checkpoint holds plain data only
    assert isinstance(state["model_config"], dict) and isinstance(state["train_config"], dict)


def test_resume_is_exact(toy, tmp_path):
    tr, va = toy
    opts = dict(batch_size=8, eval_every=4, lr=3e-3, seed=5, kappa=2.0, progress=False, epochs=3)
    full = train(_model(), tr, va, steps=24, out_dir=tmp_path / "a", **opts)
    part = train(_model(), tr, va, steps=12, out_dir=tmp_path / "b", **opts)
    assert part.steps == 12
    with pytest.raises(FileExistsError, match="resume=True"):
        train(_model(), tr, va, steps=24, out_dir=tmp_path / "b", **opts)
    rest = train(_model(), tr, va, steps=24, out_dir=tmp_path / "b", resume=True, **opts)
    assert _rows(rest) == _rows(full)
    # the second half crossed an epoch boundary (18 batches per epoch) and wrote the same log
    assert rest.epoch > 1
    a, b = load_runs(tmp_path / "a" / "log.csv"), load_runs(tmp_path / "b" / "log.csv")
    np.testing.assert_array_equal(a.loss, b.loss)
    # resuming with different hyper-parameters is refused, naming the field
    with pytest.raises(ValueError, match="lr"):
        train(_model(), tr, va, steps=30, out_dir=tmp_path / "b", resume=True, **{**opts, "lr": 1e-3})


def test_sigkill_leaves_consistent_files_and_resumes(toy, tmp_path):
    sys.path.insert(0, str(HERE))
    from _train_script import OPTIONS, make_model

    tr, va = toy
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(HERE / "_train_script.py"), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = out / "log.csv"
    # A hang guard only, not a timing test: on a loaded machine the child can take minutes to import
    # torch and log three rows (120 s failed at load 20).
    deadline = time.monotonic() + 1800
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and log.read_text().count("\n") >= 4:  # header + 3 rows
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.stdout.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # whatever the moment of the kill, both files are whole and agree
    state = load_checkpoint(out / "checkpoint.pt")
    logged = load_runs(log)
    assert len(logged) >= len(state["rows"]) >= 3
    resumed = train(make_model(), tr, va, out_dir=out, resume=True, kappa=2.0, progress=False, **OPTIONS)
    full = train(make_model(), tr, va, out_dir=tmp_path / "full", kappa=2.0, progress=False, **OPTIONS)
    assert _rows(resumed) == _rows(full)
    assert len(load_runs(log)) == len(full.rows) == 15
    assert not list(out.glob(".*.tmp"))  # a temporary file left by the kill is cleaned up on resume


def test_nan_loss_stops_naming_the_step_and_keeps_checkpoint(toy, tmp_path):
    tr, va = toy
    model = _model()
    calls = {"n": 0}

    def poison(module, args, output):
        if module.training:
            calls["n"] += 1
            if calls["n"] > 25:  # call 1 is the FLOP count, call k + 1 is step k
                return output * float("nan")
        return output

    model.energy_head.register_forward_hook(poison)
    with pytest.raises(NonFiniteLossError, match=r"step 25\b") as err:
        train(model, tr, va, steps=40, epochs=5, eval_every=10, out_dir=tmp_path, **FAST)
    assert err.value.step == 25 and err.value.checkpoint_step == 20
    assert "step 20" in str(err.value)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["progress"]["step"] == 20
    assert all(torch.isfinite(v).all() for v in state["model_state"].values() if v.is_floating_point())
    assert len(load_runs(tmp_path / "log.csv")) == 2


def test_unwritable_out_dir_fails_before_training(toy, tmp_path):
    tr, va = toy
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    forwards = []
    model.register_forward_pre_hook(lambda *_: forwards.append(1))
    with pytest.raises(PermissionError, match="not a writable directory"):
        train(model, tr, va, steps=5, out_dir=blocker / "run", **{**FAST, "kappa": None})
    assert not forwards  # failed before evaluating or training anything (not a wall-clock test)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_float64_training(toy):
    tr, va = toy
    model = _model("cartesian", 8, 1, dtype="float64")
    res = train(model, tr, va, steps=6, eval_every=3, **FAST)
    assert next(model.parameters()).dtype == torch.float64
    assert all(math.isfinite(r.loss) for r in res.rows) and len(res.rows) == 2


def test_single_epoch_default_stops_when_data_run_out(toy):
    tr, va = toy
    res = train(_model(), tr, va, eval_every=100, **FAST)
    assert res.stop_reason == "data" and res.epoch == 1.0
    assert res.steps == len(tr) // 8
    assert len(res.rows) == 1  # the final evaluation


def test_multi_epoch_augmentation(toy):
    tr, va = toy
    opts = dict(epochs=2, eval_every=9, **FAST)
    a = train(_model(), tr, va, augment=True, **opts)
    b = train(_model(), tr, va, augment=True, **opts)
    c = train(_model(), tr, va, augment=False, **opts)
    assert a.stop_reason == "data" and a.epoch == 2.0
    assert a.tokens == 2 * c.tokens // 2 * 1 and a.tokens == c.tokens
    assert _rows(a) == _rows(b)  # seeded
    assert _rows(a) != _rows(c)  # the rotations change what the unconstrained model sees


def test_budgets_and_mup(toy):
    tr, va = toy
    res = train(_model(width=32), tr, va, tokens=300, base_width=16, eval_every=100, **{**FAST, "lr": 2e-3})
    assert res.stop_reason == "tokens" and 300 <= res.tokens < 300 + 8 * 12
    assert res.lr == pytest.approx(1e-3)  # 2e-3 * 16 / 32
    res = train(_model(), tr, va, minutes=1e-6, epochs=100, **FAST)
    assert res.stop_reason == "minutes" and res.steps <= 2


def test_symmetry_loss_option_counts_flops(toy):
    tr, va = toy
    res = train(_model(), tr, va, steps=4, eval_every=4, symmetry_weight=1.0, symmetry_rotations=2, **FAST)
    n = res.n_params
    assert res.rows[-1].flops == pytest.approx(3 * 2.0 * n * res.tokens * 3)
    plain = train(_model(), tr, va, steps=4, eval_every=4, **FAST)
    assert res.flops_per_atom_measured > 2.5 * plain.flops_per_atom_measured


def test_bad_options(toy, tmp_path):
    tr, va = toy
    with pytest.raises(TypeError, match="unknown option"):
        train(_model(), tr, va, stepz=3)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=-1.0)
    with pytest.raises(ValueError, match="exceeds"):
        train(_model(), tr, va, batch_size=10_000, progress=False)
    with pytest.raises(TypeError, match="Potential"):
        train(torch.nn.Linear(2, 2), tr, va)
    with pytest.raises(TypeError, match="val_data"):
        train(_model(), tr, [1, 2])


def test_optional_dependencies_named(toy, monkeypatch, capsys):
    tr, va = toy
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match=r"nnip_scaling\[train\]"):
        train(_model(), tr, va, steps=1, **{**FAST, "progress": True})
    res = train(_model(), tr, va, steps=2, **{**FAST, "progress": None})  # no terminal, no tqdm: no bar
    assert res.steps == 2
    monkeypatch.setitem(sys.modules, "schedulefree", None)
    with pytest.raises(ImportError, match=r"nnip_scaling\[train\]"):
        train(_model(), tr, va, steps=1, **FAST)


def test_progress_bar(toy, capsys):
    pytest.importorskip("tqdm")
    tr, va = toy
    res = train(_model(), tr, va, steps=3, eval_every=3, **{**FAST, "progress": True})
    assert res.steps == 3
    assert "unconstrained-w16-d2-s0" in capsys.readouterr().err


def test_gradient_clipping_is_applied(toy):
    tr, va = toy

    def moved(**kw):
        model = _model()
        start = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
        train(model, tr, va, steps=5, eval_every=5, **{**FAST, **kw})
        return float((torch.cat([p.detach().reshape(-1) for p in model.parameters()]) - start).abs().max())

    free, clipped = moved(grad_clip=None), moved(grad_clip=1e-14)
    # clipped to 1e-14, gradients drown in Adam's eps = 1e-8: the weights hardly move
    assert free > 1e-3 and clipped < 1e-4 * free
