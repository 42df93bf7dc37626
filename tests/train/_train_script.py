"""Child process for the kill/resume test: trains the toy set into argv[1] (one thread)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import toy_dataset  # noqa: E402

from nnip_scaling.models import build_model  # noqa: E402
from nnip_scaling.train import train  # noqa: E402

OPTIONS = dict(steps=60, batch_size=8, eval_every=4, lr=3e-3, seed=3, epochs=5)


def make_model():
    torch.manual_seed(0)
    return build_model("unconstrained", 16, 2)


if __name__ == "__main__":
    import time

    torch.set_num_threads(1)
    ds = toy_dataset()
    model = make_model()
    # slow the child down (20 ms per forward; numerics unchanged) so the parent can kill it mid-run
    model.energy_head.register_forward_hook(lambda module, args, output: time.sleep(0.02))
    train(model, ds.split("train"), ds.split("val"), out_dir=sys.argv[1], resume=True, kappa=2.0,
          progress=False, **OPTIONS)
