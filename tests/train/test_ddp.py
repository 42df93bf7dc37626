"""DistributedDataParallel with two CPU processes (gloo) against single-process training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nnip_scaling.train import train

HERE = Path(__file__).parent


def test_two_process_ddp_matches_single_process(toy, tmp_path):
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available in this build")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "_ddp_script.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    got = json.loads((tmp_path / "ddp.json").read_text())
    assert got["world_size"] == 2
    assert got["max_param_diff"] == 0.0  # identical parameters on both ranks
    # rank 0 alone wrote the log and the checkpoint
    assert (tmp_path / "run" / "log.csv").exists() and (tmp_path / "run" / "checkpoint.pt").exists()

    sys.path.insert(0, str(HERE))
    from _ddp_script import OPTIONS, make_model

    tr, va = toy
    model = make_model()
    single = train(model, tr, va, **OPTIONS)
    assert len(got["rows"]) == len(single.rows) == 2
    for r_ddp, r_one in zip(got["rows"], single.rows):
        assert r_ddp["step"] == r_one.step and r_ddp["tokens"] == r_one.tokens
        assert r_ddp["train_loss"] == pytest.approx(r_one.train_loss, rel=1e-9)
        assert r_ddp["loss"] == pytest.approx(r_one.loss, rel=1e-9)
    params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])[:50]
    assert torch.allclose(torch.tensor(got["params"], dtype=torch.float64), params, rtol=1e-8, atol=1e-10)
