"""Fit the paper's scaling laws to a run log: frontier power law, sum power law, compute-optimal allocation.

The run log here is synthetic, drawn from the paper's eSEN sum law (table 7) with kappa = 74.36 and 1%
log-normal noise, so the fits can be checked against the truth. With your own runs, write a CSV with
columns run_id, n_params, tokens, flops, loss (and optionally hours, arch, step) and start from
`load_runs`; or run the same pipeline from the shell: `nnip-scaling fit runs.csv --plot fit.png`.

Run: python examples/fit_scaling_laws.py [OUT_DIR]   (NNIP_FAST=1 for fewer bootstraps)
"""

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from nnip_scaling.scaling import (
    compute_optimal,
    consistency,
    fit_power_law,
    fit_sum_power_law,
    load_runs,
    pareto_frontier,
    prepare_runs,
    save_runs,
)
from nnip_scaling.scaling.synthetic import synthetic_runs

FAST = os.environ.get("NNIP_FAST") == "1"
N_BOOT = 100 if FAST else 1000
TRUTH = dict(A=10**3.760, B=10**5.129, alpha=0.817, beta=0.753)  # eSEN, table 7
KAPPA = 74.36  # eSEN forward FLOPs per parameter per atom

out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="nnip_fit_"))
out_dir.mkdir(parents=True, exist_ok=True)

# 1. A run log: 8 model sizes (the eSEN ladder's range), 25 evaluations per learning curve.
runs = synthetic_runs(np.geomspace(4.4e5, 3.7e6, 8), D_max=9.2e8, fractions=np.geomspace(0.01, 1, 25),
                      **TRUTH, kappa=KAPPA, noise=0.01, flops_per_hour=2e16, arch="eSEN", seed=0)
path = save_runs(out_dir / "runs.csv", runs)
print(f"wrote {len(runs)} rows to {path}")

# 2. Load it back and drop the first 5% of each run (paper section 3.2).
runs = prepare_runs(load_runs(path), drop_first=0.05)

# 3. Approach 1: the loss-compute Pareto frontier and its power law (eq. 4), compute in PFLOPs.
pflops = runs.flops / 1e15
idx = pareto_frontier(pflops, runs.loss)
frontier = fit_power_law(pflops[idx], runs.loss[idx], n_bootstrap=N_BOOT, seed=0)
print(f"\nfrontier ({len(idx)} points): L = {frontier.F:.3f} C^-{frontier.gamma:.3f}   "
      f"gamma_c 95% CI [{frontier.ci['gamma'][0]:.3f}, {frontier.ci['gamma'][1]:.3f}]")

# 4. Approach 3: the sum power law on every row (eq. 5), rows resampled for the intervals.
fit = fit_sum_power_law(runs.N, runs.D, runs.loss, L_inf=0.0, n_bootstrap=N_BOOT, seed=0)
print("\nsum power law (truth in brackets):")
for k in ("A", "B", "alpha", "beta"):
    lo, hi = fit.ci[k]
    print(f"  {k:<6} {getattr(fit, k):10.4g}   95% CI [{lo:.4g}, {hi:.4g}]   ({TRUTH[k]:.4g})")

# 5. Compute-optimal allocation (eq. 6-7) and the consistency check of table 1.
opt = compute_optimal(fit, KAPPA, compute_unit=1e15)
print(f"\ncompute-optimal: N* ~ C^{opt.a:.3f}, D* ~ C^{opt.b:.3f}; "
      f"L(C) = {opt.F_c:.3f} C^-{opt.gamma_c:.3f} (C in PFLOPs)")
for C in (1e2, 1e4):
    print(f"  at {C:.0e} PFLOPs: N* = {opt.N_opt(C):.3g} parameters, D* = {opt.D_opt(C):.3g} atoms, "
          f"loss {opt.loss(C):.4f}")
cons = consistency(frontier, fit, KAPPA, compute_unit=1e15)
print(f"consistency: gamma_c {cons.gamma_c_frontier:.3f} (frontier, eq. 4) vs "
      f"{cons.gamma_c_sum:.3f} (sum law, eq. 7); F_c {cons.F_c_frontier:.3f} vs {cons.F_c_sum:.3f}")

# 6. A figure, if matplotlib is installed (pip install 'nnip_scaling[plot]').
try:
    import matplotlib  # noqa: F401
except ImportError:
    print("\nmatplotlib is not installed: plot skipped (pip install 'nnip_scaling[plot]')")
else:
    from nnip_scaling.scaling.plot import plot_report

    png = plot_report(out_dir / "fit.png", compute=pflops, loss=runs.loss, frontier=idx,
                      frontier_fit=frontier, N=runs.N, D=runs.D, sum_loss=runs.loss, sum_fit=fit,
                      optimum=opt, compute_label="PFLOPs", title="eSEN (synthetic)")
    print(f"\nwrote {png}")
