"""Run under ``torchrun --nproc_per_node 2``: data-parallel training of the toy set (float64, gloo).

Rank 0 writes ``ddp.json`` into argv[1] with the logged rows and the largest parameter difference
between ranks."""

import dataclasses
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from conftest import toy_dataset  # noqa: E402

from nnip_scaling.models import build_model  # noqa: E402
from nnip_scaling.train import init_distributed, train  # noqa: E402

OPTIONS = dict(steps=10, batch_size=8, eval_every=5, lr=3e-3, seed=2, kappa=2.0, progress=False)


def make_model():
    torch.manual_seed(0)
    return build_model("unconstrained", 16, 2, dtype="float64")


if __name__ == "__main__":
    torch.set_num_threads(1)
    info = init_distributed()
    out = Path(sys.argv[1])
    ds = toy_dataset()
    model = make_model()
    if info.rank == 1:  # different initial weights on rank 1: DDP must broadcast rank 0's
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
    res = train(model, ds.split("train"), ds.split("val"), out_dir=out / "run", **OPTIONS)
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(info.world_size)]
    dist.all_gather(gathered, flat)
    if info.is_main:
        diff = max(float((g - gathered[0]).abs().max()) for g in gathered)
        (out / "ddp.json").write_text(json.dumps({
            "world_size": info.world_size, "max_param_diff": diff,
            "rows": [dataclasses.asdict(r) for r in res.rows],
            "params": flat.tolist()[:50],
        }))
    dist.barrier()
    dist.destroy_process_group()
