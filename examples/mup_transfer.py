"""μP learning rates: which rate each parameter gets, and the coordinate check that shows why.

Prints the per-parameter table of ``nnip_scaling.train.mup`` for a cartesian model 4x wider than its base
width, then a coordinate check (how far each block's output moves in two Adam steps, at the base width and
4x wider) under μP (``lr_rule="mup"``, train()'s default) and under the paper's global rule
(``lr_rule="global"``). See docs/training.md, "μP".

    python examples/mup_transfer.py          # NNIP_FAST=1: smaller widths, one seed
"""

import os

import torch

from nnip_scaling.data import Normaliser, iter_batches, load_dataset
from nnip_scaling.models import build_model
from nnip_scaling.train.coordcheck import coordinate_check
from nnip_scaling.train.mup import classify_parameters, format_rules

FAST = os.environ.get("NNIP_FAST") == "1"
torch.set_num_threads(1)
BASE, WIDE = (8, 32) if FAST else (16, 64)


def build(width: int) -> torch.nn.Module:
    return build_model("cartesian", width, 1, n_radial=16, dtype="float64")


# 1. Which learning rate each parameter gets (relative to eta*, the rate tuned at the base width).
wide = build(WIDE)
print(f"cartesian, width {WIDE}, base width {BASE}:")
print(format_rules(classify_parameters(wide, BASE)))

# 2. Coordinate check: the RMS change of each block's output, at the base width and 4x wider.
data = load_dataset("builtin", split="train").select(list(range(32)))
batch = next(iter_batches(data.select([0, 1]), 2, normaliser=Normaliser.fit(data), dtype=torch.float64))
seeds = (0,) if FAST else (0, 1, 2, 3)
for rule in ("mup", "global"):
    check = coordinate_check(build, (BASE, WIDE), batch, base_width=BASE, lr=1e-4, lr_rule=rule, seeds=seeds)
    print()
    print(check.table())
