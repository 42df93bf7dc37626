"""`nnip-scaling fit`: the table, the JSON, the plot, per-architecture fits and errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from nnip_scaling.cli import main
from nnip_scaling.scaling import RunLog, save_runs
from nnip_scaling.scaling.synthetic import synthetic_runs

ESEN = dict(A=10**3.760, B=10**5.129, alpha=0.817, beta=0.753)
KAPPA = 74.36


def _write(tmp_path, name="runs.csv", **kw):
    runs = synthetic_runs(np.geomspace(4e5, 4e6, 6), D_max=9.2e8, fractions=np.geomspace(0.02, 1, 15),
                          **ESEN, kappa=KAPPA, noise=0.005, flops_per_hour=5e15, seed=0, **kw)
    return save_runs(tmp_path / name, runs), runs


def test_fit_prints_every_parameter_with_ci_and_writes_json(tmp_path, capsys):
    path, _ = _write(tmp_path)
    out_json = tmp_path / "fit.json"
    rc = main(["fit", str(path), "--kappa", str(KAPPA), "--bootstrap", "30", "--drop-first", "0.05",
               "--sum-L-inf", "0", "--json", str(out_json)])
    assert rc == 0
    text = capsys.readouterr().out
    for token in ("Frontier power law", "F_c", "gamma_c", "Sum power law", "alpha", "beta",
                  "Compute-optimal allocation", "kappa = 74.36 (given)", "Consistency (table 1)",
                  "95% CI", "(fixed)"):
        assert token in text, token
    res = json.loads(out_json.read_text())["results"]["all runs"]
    sl = res["sum_law"]
    assert sl["alpha"] == pytest.approx(0.817, abs=0.02) and sl["beta"] == pytest.approx(0.753, abs=0.02)
    assert sl["ci"]["alpha"][0] < sl["alpha"] < sl["ci"]["alpha"][1]
    assert sl["fixed"] == ["L_inf"]
    co = res["compute_optimal"]
    assert co["gamma_c"] == pytest.approx(0.817 * 0.753 / (0.817 + 0.753), abs=0.01)
    assert res["consistency"]["gamma_c_sum"] == co["gamma_c"]
    assert res["frontier"]["gamma"] == pytest.approx(co["gamma_c"], abs=0.03)
    assert res["kappa"] == KAPPA
    # Every value printed in the table is in the JSON too.
    assert f"{sl['alpha']:.4g}" in text


def test_fit_infers_kappa_and_fits_hours(tmp_path, capsys):
    path, _ = _write(tmp_path, name="runs.jsonl")
    rc = main(["fit", str(path), "--bootstrap", "0", "--compute", "hours", "--sum-L-inf", "0"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "kappa = 74.36 (inferred from the log" in text
    assert "L(H) = L_inf + F_h H^-gamma_h, H in hours" in text
    assert "Consistency check: skipped" in text
    assert "(no bootstrap)" in text


def test_fit_per_architecture_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    a = synthetic_runs([4e5, 1e6, 4e6], D_max=9.2e8, **ESEN, kappa=KAPPA, noise=0.005, arch="eSEN")
    b = synthetic_runs([4e5, 1e6, 4e6], D_max=9.2e8, A=10**1.356, B=10**2.194, alpha=0.276,
                       beta=0.311, kappa=2.33, noise=0.005, arch="MPNN")
    both = RunLog(*(np.concatenate([getattr(a, c), getattr(b, c)])
                    for c in ("run_id", "n_params", "tokens", "flops", "loss")),
                  extra={k: np.concatenate([a.extra[k], b.extra[k]]) for k in a.extra})
    path = save_runs(tmp_path / "both.csv", both)
    png = tmp_path / "fit.png"
    rc = main(["fit", str(path), "--bootstrap", "10", "--sum-L-inf", "0", "--plot", str(png)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "== eSEN:" in text and "== MPNN:" in text
    for arch in ("eSEN", "MPNN"):
        out = tmp_path / f"fit_{arch}.png"
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc = main(["fit", str(path), "--bootstrap", "0", "--sum-L-inf", "0", "--where", "arch=MPNN"])
    text = capsys.readouterr().out
    assert rc == 0 and "== MPNN:" in text and "eSEN" not in text


def test_fit_errors_are_reported(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.csv")]) == 2
    assert "No such file" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("run_id,n_params,tokens,flops,loss\na,10,100,6000,nan\n")
    assert main(["fit", str(bad)]) == 2
    assert "column 'loss' is not a finite number" in capsys.readouterr().err
    path, _ = _write(tmp_path)
    assert main(["fit", str(path), "--where", "arch=none"]) == 2
    assert "no column 'arch'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit", str(path), "--sum-L-inf", "auto"])


def test_plot_without_matplotlib_names_the_extra(tmp_path, capsys, monkeypatch):
    path, _ = _write(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    out_json = tmp_path / "fit.json"
    rc = main(["fit", str(path), "--bootstrap", "0", "--sum-L-inf", "0", "--json", str(out_json),
               "--plot", str(tmp_path / "fit.png")])
    captured = capsys.readouterr()
    assert rc == 2
    assert "pip install 'nnip_scaling[plot]'" in captured.err
    assert "Sum power law" in captured.out and out_json.exists()  # the fit itself still reported


def test_fit_groups_by_kind_and_prints_gates(tmp_path, capsys):
    a = synthetic_runs([4e5, 1e6, 4e6], D_max=9.2e8, **ESEN, kappa=KAPPA, noise=0.003, seed=0)
    b = synthetic_runs([4e5, 1e6, 4e6], D_max=9.2e8, A=10**1.356, B=10**2.194, alpha=0.276, beta=0.311,
                       kappa=2.33, noise=0.003, seed=1)
    kind = np.array(["spherical"] * len(a) + ["unconstrained"] * len(b))
    both = RunLog(np.concatenate([np.char.add("s", a.run_id), np.char.add("u", b.run_id)]),
                  *(np.concatenate([getattr(a, c), getattr(b, c)]) for c in ("n_params", "tokens", "flops", "loss")),
                  extra={"kind": kind, "arch": np.full(len(kind), "same")})
    path = save_runs(tmp_path / "study_runs.csv", both)
    out_json = tmp_path / "fit.json"
    assert main(["fit", str(path), "--bootstrap", "20", "--sum-L-inf", "0", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "== spherical:" in text and "== unconstrained:" in text and "all runs" not in text
    assert "Sanity gates:" in text and "wider model wins 20/20" in text
    res = json.loads(out_json.read_text())["results"]
    assert res["spherical"]["sum_law"]["alpha"] == pytest.approx(0.817, abs=0.05)
    assert res["unconstrained"]["sum_law"]["alpha"] == pytest.approx(0.276, abs=0.05)
    assert res["spherical"]["kappa"] == pytest.approx(KAPPA) and res["unconstrained"]["kappa"] == pytest.approx(2.33)
    assert "L_inf = 0" in res["spherical"]["consistency"]["note"]  # like with like: both fits fixed at 0
    # --by overrides the automatic column; "none" pools
    assert main(["fit", str(path), "--bootstrap", "0", "--sum-L-inf", "0", "--by", "arch"]) == 0
    assert "== same:" in capsys.readouterr().out


def test_fit_checks_outputs_and_units_before_fitting(tmp_path, capsys, monkeypatch):
    import nnip_scaling.scaling.analysis as analysis

    path, _ = _write(tmp_path)
    called = []
    monkeypatch.setattr(analysis, "_analyse_one", lambda *a, **k: called.append(1))
    assert main(["fit", str(path), "--json", str(tmp_path / "nowhere" / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "--json" in err and "does not exist" in err and "Traceback" not in err
    assert main(["fit", str(path), "--plot", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert not called  # the fit never started
    for bad in ("0", "-1e15", "nan"):
        with pytest.raises(SystemExit):
            main(["fit", str(path), "--compute-unit", bad])
        assert "--compute-unit" in capsys.readouterr().err


def test_fit_mixed_L_inf_treatments_are_made_comparable(tmp_path, capsys):
    path, _ = _write(tmp_path)
    assert main(["fit", str(path), "--bootstrap", "0", "--sum-L-inf", "fit", "--frontier-L-inf", "0"]) == 0
    text = capsys.readouterr().out
    # eq. 7 carries the sum law's L_inf: the frontier is refitted with it, or both were already 0
    assert "refitted with the sum law's L_inf" in text or "L_inf = 0 (fixed" in text or "fitted in both" in text
