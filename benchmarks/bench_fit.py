"""Scaling-law fits: speed of the bootstrap and accuracy of the optimiser.

Cases (synthetic run logs from the paper's GemNet-OC sum law, table 7, 2% log-normal noise):

* ``sum_law``: ``fit_sum_power_law`` on 250 points (25 model sizes x 10 data fractions, as in the
  paper's section 4.2) with 1000 bootstraps; target under 30 s on 2 cores. Default Huber (1e-3) with
  ``L_inf="fit"`` and with ``L_inf=0``, and plain least squares.
* ``frontier``: ``pareto_frontier`` of 25 learning curves x 40 evaluations, then ``fit_power_law``
  on the frontier with 1000 bootstraps (``L_inf=0``: closed form; ``L_inf="fit"``: least squares).
* ``warm_vs_cold``: time of one bootstrap refit warm-started from the full-data optimum vs a cold
  multi-start fit of the same resample (side by side, 20 resamples each; ratio reported).
* ``early_stop``: losses at the 1e-3 scale, a poor start; objective reached by this fitter vs by the
  naive Hoffmann-style fit (Huber on log residuals, L-BFGS-B with scipy's default tolerances), and
  the spread of alpha of both when the last bit of a third of the losses is flipped (what differs
  between processors).

Both wall and process (CPU) time are reported: the machine is shared, so wall time is noisy; CPU time
is what one core spends. ``load_avg`` in the JSON says how busy the machine was.

Usage: python benchmarks/bench_fit.py [--quick]   -> table on stdout, JSON in benchmarks/results/
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from nnip_scaling.scaling import (
    FitWarning,
    fit_power_law,
    fit_sum_power_law,
    pareto_frontier,
)
from nnip_scaling.scaling.synthetic import synthetic_runs

RESULTS = Path(__file__).resolve().parent / "results" / "bench_fit.json"
GEMNET = dict(A=10**2.109, B=10**3.261, alpha=0.524, beta=0.499)


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def _numpy_simd() -> list[str]:
    """numpy's dispatched SIMD extensions on this machine (they decide the last bit of exp/log)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as feats
    return sorted(k for k, v in feats.items() if v)


def _naive_fit(runs):
    """Hoffmann-style fit: Huber 1e-3 on log residuals, L-BFGS-B with scipy's default tolerances."""
    lN, lD, y = np.log(runs.N), np.log(runs.D), np.log(runs.loss)

    def objective(p):
        a, b, e, alpha, beta = p
        r = y - np.logaddexp(np.logaddexp(a - alpha * lN, b - beta * lD), e)
        return np.where(np.abs(r) <= 1e-3, 0.5 * r * r, 1e-3 * (np.abs(r) - 5e-4)).sum()

    return minimize(objective, [math.log(1e3), math.log(1e3), math.log(runs.loss.min() / 2), 1.0, 1.0],
                    method="L-BFGS-B")


def early_stop_rows(n_perturbed: int = 20) -> list[dict]:
    """Losses at the 1e-3 scale and a poor start: this fitter vs the naive fit.

    Also refits after flipping the last bit of a random third of the losses (``n_perturbed`` times):
    that is how much two processors differ in the generated data (numpy's exp/log kernels round
    differently with and without AVX-512). This fitter's exponents do not move; the naive fit's
    stopping point does.
    """
    truth = dict(A=GEMNET["A"] * 1e-2, B=GEMNET["B"] * 1e-2, alpha=0.524, beta=0.499)
    small = synthetic_runs(np.geomspace(3e5, 8e6, 6), D_max=9.2e8, **truth, noise=0.005, seed=3)
    poor = dict(A=1e3, B=1e3, alpha=1.0, beta=1.0, L_inf=0.0)
    ours, wall, cpu = timed(lambda: fit_sum_power_law(small.N, small.D, small.loss, n_bootstrap=0,
                                                       init=poor))
    naive, nwall, ncpu = timed(lambda: _naive_fit(small))
    rows = [dict(case="early_stop", variant="this fitter (least_squares, tol 1e-12)",
                 n_points=len(small), n_bootstrap=0, wall_s=wall, cpu_s=cpu,
                 objective=ours.objective, alpha=ours.alpha, beta=ours.beta),
            dict(case="early_stop", variant="naive L-BFGS-B, default tolerances",
                 n_points=len(small), n_bootstrap=0, wall_s=nwall, cpu_s=ncpu,
                 objective=float(naive.fun), alpha=float(naive.x[3]), beta=float(naive.x[4]),
                 message=str(naive.message))]
    rng = np.random.default_rng(0)
    alphas: dict[str, list[float]] = {"ours": [], "naive": []}
    for _ in range(n_perturbed):
        flip = rng.random(small.loss.size) < 1 / 3
        loss = np.where(flip, np.nextafter(small.loss, np.where(rng.random(flip.size) < 0.5, 0, np.inf)),
                        small.loss)
        perturbed = small.with_loss(loss)
        alphas["ours"].append(fit_sum_power_law(perturbed.N, perturbed.D, perturbed.loss,
                                                n_bootstrap=0, init=poor).alpha)
        alphas["naive"].append(float(_naive_fit(perturbed).x[3]))
    for key, label in (("ours", "this fitter, last bit perturbed"), ("naive", "naive, last bit perturbed")):
        a = np.array(alphas[key])
        rows.append(dict(case="early_stop", variant=label, n_points=len(small), n_bootstrap=0,
                         wall_s=math.nan, cpu_s=math.nan, n_perturbed=n_perturbed,
                         alpha_range=[float(a.min()), float(a.max())], alphas=a.tolist()))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 bootstraps instead of 1000")
    ap.add_argument("--only-early-stop", action="store_true",
                    help="run only the early_stop case (prints, writes no JSON)")
    args = ap.parse_args()
    n_boot = 100 if args.quick else 1000
    if args.only_early_stop:
        for r in early_stop_rows():
            r.pop("alphas", None)
            print(r)
        return
    warnings.simplefilter("ignore", FitWarning)
    rows = []

    # --- sum law, 250 points ----------------------------------------------------------------
    runs = synthetic_runs(np.geomspace(3e5, 8e6, 25), D_max=9.2e8, **GEMNET, kappa=35.18, noise=0.02,
                          seed=0)
    assert len(runs) == 250
    for label, kw in (("huber 1e-3, L_inf fit", dict(L_inf="fit")),
                      ("huber 1e-3, L_inf 0", dict(L_inf=0.0)),
                      ("least squares, L_inf fit", dict(L_inf="fit", huber_delta=None))):
        fit, wall, cpu = timed(lambda kw=kw: fit_sum_power_law(runs.N, runs.D, runs.loss,
                                                                n_bootstrap=n_boot, seed=0, **kw))
        rows.append(dict(case="sum_law", variant=label, n_points=len(runs), n_bootstrap=n_boot,
                         wall_s=wall, cpu_s=cpu, alpha=fit.alpha, beta=fit.beta,
                         alpha_ci=list(fit.ci["alpha"]), beta_ci=list(fit.ci["beta"])))

    # --- frontier ---------------------------------------------------------------------------
    curves = synthetic_runs(np.geomspace(3e5, 8e6, 25), D_max=9.2e8, fractions=np.geomspace(0.01, 1, 40),
                            **GEMNET, kappa=35.18, noise=0.02, seed=1)
    x = curves.flops / 1e15
    idx, wall, cpu = timed(lambda: pareto_frontier(x, curves.loss))
    rows.append(dict(case="frontier", variant="pareto_frontier", n_points=len(curves), n_bootstrap=0,
                     wall_s=wall, cpu_s=cpu, n_frontier=len(idx)))
    for label, L_inf in (("power law, L_inf 0 (closed form)", 0.0), ("power law, L_inf fit", "fit")):
        fit, wall, cpu = timed(lambda L_inf=L_inf: fit_power_law(x[idx], curves.loss[idx], L_inf=L_inf,
                                                                  n_bootstrap=n_boot, seed=0))
        rows.append(dict(case="frontier", variant=label, n_points=len(idx), n_bootstrap=n_boot,
                         wall_s=wall, cpu_s=cpu, gamma=fit.gamma, gamma_ci=list(fit.ci["gamma"])))

    # --- warm vs cold bootstrap refits, side by side ------------------------------------------
    rng = np.random.default_rng(0)
    resamples = [rng.integers(0, len(runs), len(runs)) for _ in range(20)]
    full = fit_sum_power_law(runs.N, runs.D, runs.loss, n_bootstrap=0)
    init = dict(A=full.A, B=full.B, alpha=full.alpha, beta=full.beta, L_inf=full.L_inf)
    warm_cold = {}
    for label, kw in (("warm", dict(init=init)), ("cold", {})):
        _, wall, cpu = timed(lambda kw=kw: [fit_sum_power_law(runs.N[r], runs.D[r], runs.loss[r],
                                                               n_bootstrap=0, **kw) for r in resamples])
        warm_cold[label] = cpu / len(resamples)
        rows.append(dict(case="warm_vs_cold", variant=f"one refit, {label} start", n_points=len(runs),
                         n_bootstrap=0, wall_s=wall / len(resamples), cpu_s=cpu / len(resamples)))
    rows[-1]["cold_over_warm"] = warm_cold["cold"] / warm_cold["warm"]

    # --- early stopping at the 1e-3 loss scale --------------------------------------------------
    rows += early_stop_rows()

    # --- table + JSON ---------------------------------------------------------------------------
    print(f"{'case':<13} {'variant':<40} {'points':>6} {'boots':>5} {'wall s':>8} {'cpu s':>8}  result")
    for r in rows:
        extra = ""
        if "alpha" in r:
            extra = f"alpha {r['alpha']:.4f} beta {r['beta']:.4f}"
        if "gamma" in r:
            extra = f"gamma {r['gamma']:.4f} [{r['gamma_ci'][0]:.4f}, {r['gamma_ci'][1]:.4f}]"
        if "n_frontier" in r:
            extra = f"{r['n_frontier']} frontier points"
        if "cold_over_warm" in r:
            extra = f"cold / warm CPU = {r['cold_over_warm']:.1f}x"
        if "objective" in r:
            extra = f"objective {r['objective']:.4e}, alpha {r['alpha']:.4f}"
        if "alpha_range" in r:
            extra = (f"alpha over {r['n_perturbed']} last-bit perturbations: "
                     f"{r['alpha_range'][0]:.6f} .. {r['alpha_range'][1]:.6f}")
        print(f"{r['case']:<13} {r['variant']:<40} {r['n_points']:>6} {r['n_bootstrap']:>5} "
              f"{r['wall_s']:>8.3f} {r['cpu_s']:>8.3f}  {extra}")
    meta = dict(machine=platform.machine(), cpus=os.cpu_count(), python=sys.version.split()[0],
                numpy=np.__version__, scipy=__import__("scipy").__version__, quick=args.quick,
                load_avg=list(os.getloadavg()), numpy_simd=_numpy_simd())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"\nload average {meta['load_avg'][0]:.1f}; wrote {RESULTS}")


if __name__ == "__main__":
    main()
