"""Run-log I/O: round trips, and clear errors naming the column and row."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnip_scaling.scaling import RunLog, load_runs, save_runs
from nnip_scaling.scaling.synthetic import synthetic_runs

HEADER = "run_id,n_params,tokens,flops,loss\n"


def _runs(**kw):
    return synthetic_runs([1e5, 1e6], D_max=1e8, fractions=[0.25, 0.5, 1.0], A=50.0, B=500.0,
                          alpha=0.4, beta=0.3, kappa=3.0, noise=0.01, flops_per_hour=1e13, arch="m",
                          **kw)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_round_trip_is_exact(tmp_path, suffix):
    runs = _runs(seed=4)
    path = save_runs(tmp_path / f"runs{suffix}", runs)
    back = load_runs(path)
    assert back.columns == runs.columns == ("run_id", "n_params", "tokens", "flops", "loss", "hours",
                                            "step", "arch")
    for c in runs.columns:
        a, b = runs.column(c), back.column(c)
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b)  # bit-exact
        else:
            assert list(a) == list(b)
    assert back.N is back.n_params and back.D is back.tokens and back.C is back.flops


def test_free_columns_keep_type_and_where(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("run_id,n_params,tokens,flops,loss,arch,step,split\n"
                 "a,10,100,6000,0.5,eSEN,1,val\n"
                 "a,10,200,12000,0.4,eSEN,2,val\n"
                 "b,20,100,12000,0.45,MPNN,1,val\n"
                 "\n")  # trailing blank line is ignored
    runs = load_runs(p)
    assert len(runs) == 3
    assert runs.extra["step"].dtype == np.float64 and runs.extra["arch"].dtype.kind == "U"
    assert runs.hours is None
    sub = runs.where(arch="eSEN", step=2)
    assert list(sub.run_id) == ["a"] and sub.tokens[0] == 200
    with pytest.raises(ValueError, match="no rows match"):
        runs.where(arch="GemNet")
    with pytest.raises(KeyError, match="no column 'colour'"):
        runs.column("colour")


@pytest.mark.parametrize(
    "row, match",
    [
        ("a,10,100,6000,nan", r"row 2 \(line 3\): column 'loss' is not a finite number: 'nan'"),
        ("a,10,100,6000,inf", r"row 2 .*'loss' is not a finite number"),
        ("a,-10,100,6000,0.3", r"row 2 .*'n_params' must be positive"),
        ("a,10,0,6000,0.3", r"row 2 .*'tokens' must be positive"),
        ("a,10,100,0,0.3", r"row 2 .*'flops' must be positive"),
        ("a,10,100,6000,0", r"row 2 .*'loss' must be positive"),
        ("a,10,100,,0.3", r"row 2 .*'flops' is empty"),
        ("a,10,100,6000,abc", r"row 2 .*'loss' is not a number: 'abc'"),
        (",10,100,6000,0.3", r"row 2 .*'run_id' is empty"),
        ("a,10,100,6000,0.3,7", r"line 3: more fields than the header"),
    ],
)
def test_bad_csv_values_name_row_and_column(tmp_path, row, match):
    p = tmp_path / "r.csv"
    p.write_text(HEADER + "a,10,50,3000,0.6\n" + row + "\n")
    with pytest.raises(ValueError, match=match):
        load_runs(p)


def test_missing_columns_are_listed(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("run_id,n_params,loss\na,10,0.5\n")
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['tokens', 'flops'\]"):
        load_runs(p)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_runs(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="cannot tell the format"):
        load_runs(tmp_path / "runs.txt")
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty file"):
        load_runs(empty)
    header_only = tmp_path / "h.csv"
    header_only.write_text(HEADER)
    with pytest.raises(ValueError, match="no data rows"):
        load_runs(header_only)
    j = tmp_path / "r.jsonl"
    j.write_text(json.dumps({"run_id": "a", "n_params": 1, "tokens": 1, "flops": 1, "loss": 1}) + "\n[1]\n")
    with pytest.raises(ValueError, match="line 2: expected a JSON object"):
        load_runs(j)
    j.write_text("{not json}\n")
    with pytest.raises(ValueError, match="line 1: not valid JSON"):
        load_runs(j)
    j.write_text(json.dumps({"run_id": "a", "n_params": 1, "tokens": 1, "flops": 1, "loss": 1}) + "\n"
                 + json.dumps({"run_id": "b", "n_params": 1, "tokens": 1, "flops": 1}) + "\n")
    with pytest.raises(ValueError, match=r"row 2 \(line 2\): column 'loss' is missing"):
        load_runs(j)
    j.write_text(json.dumps({"run_id": "a", "n_params": 1, "tokens": 1, "flops": 1, "loss": None}) + "\n")
    with pytest.raises(ValueError, match="row 1 .*'loss' is empty"):
        load_runs(j)


def test_runlog_constructor_validates():
    ok = dict(run_id=["a", "a"], n_params=[10, 10], tokens=[1, 2], flops=[60, 120], loss=[0.5, 0.4])
    runs = RunLog(**ok)
    assert runs.n_params.dtype == np.float64 and len(runs) == 2
    with pytest.raises(ValueError, match=r"row 2: loss = nan is not a finite number"):
        RunLog(**{**ok, "loss": [0.5, float("nan")]})
    with pytest.raises(ValueError, match=r"row 1: tokens = -1.0 must be positive"):
        RunLog(**{**ok, "tokens": [-1, 2]})
    with pytest.raises(ValueError, match="column 'flops' has 1 rows, run_id has 2"):
        RunLog(**{**ok, "flops": [60]})
    with pytest.raises(TypeError, match="column 'loss' must hold numbers"):
        RunLog(**{**ok, "loss": ["x", "y"]})
    with pytest.raises(ValueError, match="clashes with a standard column"):
        RunLog(**ok, extra={"loss": [1, 2]})
    with pytest.raises(ValueError, match="empty"):
        RunLog(run_id=[], n_params=[], tokens=[], flops=[], loss=[])
    with pytest.raises(TypeError, match="runs must be a RunLog"):
        save_runs("x.csv", {"run_id": []})
    with pytest.raises(ValueError, match="format must be"):
        save_runs("x.csv", runs, format="xml")


# ---------------------------------------------------------------------------------------------
# Issue 14 audit: cryptic errors


def test_encodings_are_reported_with_the_file_name_and_a_bom_is_ignored(tmp_path):
    body = "run_id,n_params,tokens,flops,loss,arch\nr1,10,100,1000,0.5,café\nr2,20,100,2000,0.4,café\n"
    latin = tmp_path / "latin.csv"
    latin.write_bytes(body.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.csv: not utf-8 text .* pass encoding='latin-1'"):
        load_runs(latin)
    assert list(load_runs(latin, encoding="latin-1").extra["arch"]) == ["café", "café"]
    # A UTF-8 byte-order mark (Excel's "CSV UTF-8") was glued to the first column: "missing run_id".
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    runs = load_runs(bom)
    assert runs.columns[0] == "run_id" and list(runs.run_id) == ["r1", "r2"]
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + b'{"run_id": "a", "n_params": 1, "tokens": 2, "flops": 3, "loss": 0.5}\n')
    assert list(load_runs(jsonl).run_id) == ["a"]
    with pytest.raises(ValueError, match="encoding: unknown text encoding"):
        load_runs(bom, encoding="klingon")


def test_jsonl_boolean_is_named_as_a_boolean(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text('{"run_id": "a", "n_params": 1, "tokens": 2, "flops": 3, "loss": 0.5}\n'
                    '{"run_id": "b", "n_params": true, "tokens": 2, "flops": 3, "loss": 0.5}\n')
    with pytest.raises(ValueError, match=r"b.jsonl row 2 \(line 2\): column 'n_params' is true, a boolean"):
        load_runs(path)
