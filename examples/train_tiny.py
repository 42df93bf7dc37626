"""Train a tiny equivariant potential on the built-in data, log its learning curve, reload it, and
check two symmetry tools (paper eq. 1, 2 and 23).

Run: python examples/train_tiny.py          (NNIP_FAST=1: a few seconds)
"""

import os
import tempfile
from pathlib import Path

import torch

from nnip_scaling.data import iter_batches, load_dataset
from nnip_scaling.models import build_model
from nnip_scaling.scaling import load_runs
from nnip_scaling.testing import equivariance_error
from nnip_scaling.train import GroupAveraged, load_model, symmetry_loss, train

FAST = os.environ.get("NNIP_FAST") == "1"
torch.set_num_threads(1)  # tiny models: one thread is as fast and repeatable

train_set = load_dataset("builtin", split="train")
val_set = load_dataset("builtin", split="val").subset(0.03, seed=0)  # 30 molecules for the curve
test_set = load_dataset("builtin", split="test").subset(0.05, seed=0)

torch.manual_seed(0)
model = build_model("cartesian", width=8, depth=1, n_radial=64)  # MC-EGNN-like, ~2k parameters
out_dir = Path(tempfile.mkdtemp()) / "cartesian-w8"
result = train(model, train_set, val_set, steps=40 if FAST else 400, batch_size=8, lr=1e-2,
               eval_every=10 if FAST else 50, out_dir=out_dir, progress=False)
print(f"{result.run_id}: N = {result.n_params:,}, kappa = {result.kappa:.2f}, lr = {result.lr:g}")
print(f"{'step':>5} {'tokens':>8} {'PFLOPs':>10} {'val loss':>9} {'energy':>8} {'force':>8}")
for r in result.rows:
    print(f"{r.step:>5} {r.tokens:>8,} {r.flops / 1e15:>10.2e} {r.loss:>9.4f} {r.energy_loss:>8.4f} "
          f"{r.force_loss:>8.4f}")

log = load_runs(out_dir / "log.csv")  # the run-log format of nnip_scaling.scaling
print(f"log: {len(log)} rows, columns {', '.join(log.columns[:6])}, ...")

# reload from the checkpoint (averaged weights), report errors on the test split in eV and eV/Å
model, normaliser = load_model(out_dir / "checkpoint.pt")
e_err, f_err, n_atoms = 0.0, 0.0, 0
with torch.no_grad():
    for g in iter_batches(test_set, 32):
        out = model(g)
        e = normaliser.energy_to_ev(out.energy.double(), g.atomic_numbers, g.batch)
        f = normaliser.forces_to_ev(out.forces)
        e_err += float(((e - g.energy.double()).abs() / g.n_atoms_per_graph).sum())
        f_err += float((f - g.forces).abs().sum())
        n_atoms += g.n_atoms
print(f"test: energy MAE {1000 * e_err / len(test_set):.1f} meV/atom, force MAE {f_err / (3 * n_atoms):.3f} eV/Å "
      f"({len(test_set)} molecules)")

# symmetry: the symmetry loss (eq. 2, reference = own prediction) is ~0 for the equivariant model and
# positive for an unconstrained one; group averaging (eq. 23) shrinks the unconstrained model's error
g = next(iter_batches(val_set, 4, normaliser=normaliser, dtype=torch.float64))
gen = torch.Generator().manual_seed(0)
free = build_model("unconstrained", width=16, depth=2, dtype="float64")
for name, m in (("cartesian", model.double()), ("unconstrained", free)):
    print(f"symmetry loss, {name}: {float(symmetry_loss(m, g, 4, generator=gen, reference='model').detach()):.2e}")
for n_rot in (1, 16) if FAST else (1, 4, 16, 64):
    err = equivariance_error(GroupAveraged(free, n_rot), g, checks=("rotation",)).rotation_energy
    print(f"group-averaged unconstrained model, M = {n_rot:>2}: rotation error of the energy {err:.3f}")
