"""Execution modes of the study: worker processes and submitit give the same runs as one process, and a
study killed mid-way resumes to the same result in every mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nnip_scaling.scaling import load_runs
from nnip_scaling.study import load_config, run_study

sys.path.insert(0, str(Path(__file__).parent))
from _toy import toy_dataset  # noqa: E402

# Fixed token budgets: the plan does not depend on timing, so every mode must reproduce it exactly.
CONFIG = """
[study]
minutes = 5
data = "toy.npz"
batch_size = 8
evals_per_run = 6
n_bootstrap = 5
val_molecules = 12
threads = 1

[families.cartesian]
widths = [4, 8]
depth = 1
tokens = {tokens}

[families.unconstrained]
widths = [8, 16]
depth = 1
tokens = {tokens}
"""
COMPARED = ("loss", "tokens", "flops", "n_params")
TOKENS = 2500


def _write_config(root: Path, tokens: int) -> Path:
    from nnip_scaling.data import save_npz

    if not (root / "toy.npz").exists():
        save_npz(toy_dataset(), root / "toy.npz")
    path = root / f"study_{tokens}.toml"
    path.write_text(CONFIG.format(tokens=tokens))
    return path


def _same_runs(a: Path, b: Path) -> None:
    ra, rb = load_runs(a / "runs.csv"), load_runs(b / "runs.csv")
    order_a, order_b = np.lexsort((ra.tokens, ra.run_id)), np.lexsort((rb.tokens, rb.run_id))
    np.testing.assert_array_equal(ra.run_id[order_a], rb.run_id[order_b])
    for col in COMPARED:  # every column but the wall clock
        np.testing.assert_array_equal(getattr(ra, col)[order_a], getattr(rb, col)[order_b], err_msg=col)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("exec")
    cfg = _write_config(root, TOKENS)
    out = root / "serial"
    result = run_study(load_config(cfg), out, workers=1, plots=False, log=lambda m: None)
    assert all(s["stop_reason"] == "tokens" for s in result.summaries)
    return root, cfg, out


def test_workers_give_the_same_runs(reference):
    root, cfg, serial = reference
    out = root / "two"
    result = run_study(load_config(cfg), out, workers=2, plots=False, log=lambda m: None)
    assert result.workers == 2
    _same_runs(serial, out)
    assert (out / "report.json").exists()


def test_submitit_local_gives_the_same_runs(reference):
    pytest.importorskip("submitit")
    root, cfg, serial = reference
    out = root / "submitit"
    run_study(load_config(cfg), out, workers=2, executor="submitit-local", plots=False, log=lambda m: None)
    _same_runs(serial, out)
    assert list((out / "submitit").iterdir())  # the jobs' folder


def test_missing_submitit_names_the_extra(reference, monkeypatch, tmp_path):
    _, cfg, _ = reference
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(ImportError, match=r"nnip_scaling\[cluster\]"):
        run_study(load_config(cfg), tmp_path / "o", executor="slurm", plots=False, log=lambda m: None)


def _rows(out: Path) -> int:
    return sum(max(0, len(p.read_text().splitlines()) - 1) for p in (out / "runs").glob("*/log.csv"))


@pytest.mark.parametrize("mode", [["--workers", "1"], ["--workers", "2"], ["--workers", "2", "--executor",
                                                                               "submitit-local"]])
def test_resume_after_a_kill(reference, tmp_path, mode):
    if "submitit-local" in mode:
        pytest.importorskip("submitit")
    _, cfg, serial = reference
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "nnip_scaling.cli", "study", "--config", str(cfg), "--out", str(out), "--no-plots",
           *mode]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 1800  # hang guard only (240 s failed on a machine at load 20)
        while _rows(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if proc.returncode == 0:
        pytest.skip("the study finished before it could be killed (machine too fast for this test)")
    assert (out / "plan.json").exists() and _rows(out) >= 2
    # the rerun resumes (same command) and ends where an uninterrupted study ends
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=1800).returncode == 0
    _same_runs(serial, out)


def test_rerun_on_a_finished_study_retrains_nothing_and_says_so(reference, tmp_path):
    import shutil

    _, cfg, serial = reference
    assert "earlier invocation" not in (serial / "report.md").read_text()  # a fresh study has no kept runs
    out = tmp_path / "again"
    shutil.copytree(serial, out)
    before = {p.parent.name: p.read_bytes() for p in (out / "runs").glob("*/log.csv")}
    result = run_study(load_config(cfg), out, workers=1, plots=False, log=lambda m: None)
    assert {p.parent.name: p.read_bytes() for p in (out / "runs").glob("*/log.csv")} == before
    assert all(s.get("kept") for s in result.summaries)
    n = len(result.summaries)
    assert f"{n} of {n} runs finished in an earlier invocation and were kept" in (out / "report.md").read_text()
    _same_runs(serial, out)
