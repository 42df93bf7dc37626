"""``nnip-scaling study`` end to end (a test-sized budget), its report, resume, and configuration files."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from nnip_scaling.cli import main
from nnip_scaling.scaling import load_runs
from nnip_scaling.study import FamilySpec, config_to_toml, default_config, load_config, parse_exponent_table

TEST_CONFIG = """
[study]
minutes = 0.8          # the test budget; `--quick` alone is about 3 minutes
val_molecules = 16
evals_per_run = 5
n_bootstrap = 20
"""


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    cfg = root / "test.toml"
    cfg.write_text(TEST_CONFIG)
    out = root / "out"
    return cfg, out


def test_study_quick_end_to_end(quick_study, capsys):
    cfg, out = quick_study
    assert main(["study", "--quick", "--config", str(cfg), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ranking by gamma_c:" in printed and "report:" in printed and "sanity gates:" in printed
    table = parse_exponent_table((out / "report.md").read_text())
    assert list(table) == ["unconstrained", "directional", "cartesian", "spherical"]
    fitted = 0
    for kind, row in table.items():
        assert row["runs"] == 3.0, kind
        assert row["kappa"] > 0
        for col in ("gamma_c (eq. 4)", "gamma_c (eq. 7)", "alpha", "beta", "gamma_h", "a", "b"):
            cell = row[col]  # n/a (None) when a fit was impossible, e.g. a flat learning curve
            assert cell is None or (len(cell) == 3 and math.isfinite(cell[0]) and cell[1] <= cell[2]), (kind, col)
        fitted += row["gamma_c (eq. 4)"] is not None
    assert fitted >= 2  # the tiny equivariant models do learn in a few steps
    assert table["unconstrained"]["kappa"] < table["spherical"]["kappa"]  # figure 2's ordering
    runs = load_runs(out / "runs.csv")
    assert len(np.unique(runs.run_id)) == 12
    assert set(runs.columns) >= {"hours", "kind", "width", "flops_measured", "energy_loss", "force_loss"}
    # every run of a family is planned with the same token budget D_max, and the runs that stop on
    # it saw the same D_max. A run the wall-clock budget stops first (a slow or loaded machine) must
    # be named in the report; whether that happens depends on the machine, not on our code.
    report_md = (out / "report.md").read_text()
    done = [json.loads(p.read_text()) for p in (out / "runs").glob("*/done.json")]
    for kind in table:
        fam_done = [d for d in done if d["kind"] == kind]
        assert len(fam_done) == 3 and len({d["tokens_planned"] for d in fam_done}) == 1, kind
        fam = runs.where(kind=kind)
        last = [fam.tokens[fam.run_id == d["run_id"]].max() for d in fam_done if d["stop_reason"] == "tokens"]
        assert not last or max(last) == min(last), kind
        for d in fam_done:
            if d["stop_reason"] != "tokens":
                assert f"{d['run_id']} stopped on {d['stop_reason']!r} before its token budget" in report_md
    report = json.loads((out / "report.json").read_text())
    assert set(report["families"]) == set(table)
    for kind, fam in report["families"].items():
        ww = next(g for g in fam["gates"] if g["name"] == "wider_wins")
        assert ww["pairs"] > 0 and ww["value"] == fam["wider_wins"] == table[kind]["wider wins"]
        assert fam["gates_passed"] == all(g["passed"] for g in fam["gates"])
        # a failed gate marks the numbers it invalidates in the table, and says what to change
        if not ww["passed"]:
            assert "alpha" in table[kind]["failed"] and ww["advice"]
            assert "FAILED" in printed and ww["advice"][:40] in printed.replace("\n", " ")
    text = (out / "report.md").read_text()
    assert "## Ranking" in text and "Kendall" in text
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        for name in ("fig1_compute.png", "fig3_frontiers.png", "fig5_sum_law.png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_study_rerun_resumes_finished_runs(quick_study, capsys):
    cfg, out = quick_study
    if not (out / "runs.csv").exists():
        pytest.skip("needs the end-to-end study of the previous test")
    before = load_runs(out / "runs.csv")
    assert main(["study", "--quick", "--config", str(cfg), "--out", str(out), "--no-plots"]) == 0
    after = load_runs(out / "runs.csv")
    np.testing.assert_array_equal(before.loss, after.loss)
    np.testing.assert_array_equal(before.tokens, after.tokens)


def test_unwritable_out_fails_fast(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["study", "--quick", "--out", str(blocker / "out")]) == 2
    assert "not a writable directory" in capsys.readouterr().err


def test_bad_config_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[study]\nminuts = 3\n")
    assert main(["study", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "minuts" in capsys.readouterr().err
    bad.write_text("[families.transformer]\nwidths = [1, 2]\n")
    with pytest.raises(ValueError, match="transformer"):
        load_config(bad)
    bad.write_text("[families.cartesian]\nwidths = [8]\n")
    with pytest.raises(ValueError, match="at least two"):
        load_config(bad)
    bad.write_text("[study\n")
    with pytest.raises(ValueError, match="TOML"):
        load_config(bad)


def test_config_round_trip_and_family_subset(tmp_path):
    for quick in (False, True):
        cfg = default_config(quick=quick)
        p = tmp_path / f"c{quick}.toml"
        p.write_text(config_to_toml(cfg))
        back = load_config(p, quick=quick)
        assert back == cfg
    p = tmp_path / "sub.toml"
    p.write_text('[study]\nminutes = 5\ndata = "mydata.npz"\n\n[families.spherical]\nwidths = [4, 8, 16]\n'
                 'options = { l_max = 3 }\n')
    cfg = load_config(p)
    assert [f.kind for f in cfg.families] == ["spherical"]
    fam = cfg.families[0]
    assert fam.widths == (4, 8, 16) and fam.options["l_max"] == 3 and fam.options["hidden_channels"] == 8
    assert cfg.minutes == 5 and cfg.data == str((tmp_path / "mydata.npz").resolve())
    assert main(["study", "--dump-config", str(tmp_path / "dump.toml")]) == 0
    assert load_config(tmp_path / "dump.toml") == default_config()
    with pytest.raises(ValueError, match="distinct"):
        FamilySpec(kind="cartesian", widths=(8, 8), depth=1)
    assert dataclasses.replace(cfg, minutes=1.0).minutes == 1.0


def test_figures_need_matplotlib(monkeypatch, tmp_path):
    from nnip_scaling.study.figures import write_figures

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"nnip_scaling\[plot\]"):
        write_figures(tmp_path, {})


def test_study_on_user_data(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parent))
    from _toy import toy_dataset

    from nnip_scaling.data import save_npz

    save_npz(toy_dataset(), tmp_path / "mine.npz")
    cfg = tmp_path / "study.toml"
    cfg.write_text('[study]\nminutes = 0.3\ndata = "mine.npz"\nbatch_size = 8\nevals_per_run = 4\nn_bootstrap = 10\n'
                   'val_molecules = 12\n\n[families.cartesian]\nwidths = [4, 8]\ndepth = 1\n\n'
                   '[families.unconstrained]\nwidths = [8, 16]\ndepth = 1\n')
    assert main(["study", "--config", str(cfg), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "mine.npz" in text
    assert list(parse_exponent_table(text)) == ["cartesian", "unconstrained"]
    runs = load_runs(tmp_path / "out" / "runs.csv")
    assert sorted(np.unique(runs.run_id)) == ["cartesian-w4", "cartesian-w8", "unconstrained-w16", "unconstrained-w8"]
    assert not list((tmp_path / "out").glob("*.png"))
