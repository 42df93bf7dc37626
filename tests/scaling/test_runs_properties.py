"""Property tests of ``load_runs``: generated run logs round-trip through CSV and JSON Lines, and a
malformed row anywhere gives an error that names the file, the row and the column."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnip_scaling.scaling import RunLog, load_runs, save_runs

_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
POSITIVE = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False)
RUN_ID = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(
    lambda s: s.strip() == s and s.strip() != "")


@st.composite
def run_logs(draw):
    n = draw(st.integers(1, 12))
    col = st.lists(POSITIVE, min_size=n, max_size=n)
    hours = draw(st.none() | col)
    extra = {}
    if draw(st.booleans()):
        extra["arch"] = np.array(draw(st.lists(st.sampled_from(["eSEN", "MPNN", "Gem Net", "ü"]), min_size=n,
                                               max_size=n)))
    if draw(st.booleans()):
        extra["step"] = np.array(draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n)), dtype=np.float64)
    return RunLog(run_id=np.array(draw(st.lists(RUN_ID, min_size=n, max_size=n))),
                  n_params=np.array(draw(col)), tokens=np.array(draw(col)), flops=np.array(draw(col)),
                  loss=np.array(draw(col)), hours=None if hours is None else np.array(hours), extra=extra)


def _same(a: RunLog, b: RunLog) -> None:
    assert a.columns == b.columns
    for name in a.columns:
        np.testing.assert_array_equal(a.column(name), b.column(name), err_msg=name)


@_SETTINGS
@given(runs=run_logs(), suffix=st.sampled_from([".csv", ".jsonl"]))
def test_round_trip_is_exact(tmp_path, runs, suffix):
    path = save_runs(tmp_path / f"runs{suffix}", runs)
    _same(load_runs(path), runs)


BAD_VALUES = {  # what is written in the cell -> the words the error must contain
    "": "is empty",
    "abc": "is not a number",
    "nan": "is not a finite number",
    "-inf": "is not a finite number",
    "0": "must be positive",
    "-2.5": "must be positive",
}


@_SETTINGS
@given(runs=run_logs(), data=st.data())
def test_malformed_csv_row_is_named(tmp_path, runs, data):
    path = save_runs(tmp_path / "runs.csv", runs)
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    numeric = [c for c in ("n_params", "tokens", "flops", "loss", "hours") if c in header]
    row = data.draw(st.integers(0, len(runs) - 1))
    col = data.draw(st.sampled_from(numeric))
    bad = data.draw(st.sampled_from(sorted(BAD_VALUES)))
    # rebuild the row through the csv module so quoted run ids stay intact
    import csv
    import io

    cells = next(csv.reader(io.StringIO(lines[row + 1])))
    cells[header.index(col)] = bad
    buf = io.StringIO()
    csv.writer(buf).writerow(cells)
    lines[row + 1] = buf.getvalue().rstrip("\r\n")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as exc:
        load_runs(path)
    msg = str(exc.value)
    assert f"row {row + 1} " in msg and f"line {row + 2}" in msg and repr(col) in msg, msg
    assert BAD_VALUES[bad] in msg, msg
    assert str(path) in msg


JSON_BAD = {None: "is empty", True: "a boolean", False: "a boolean", "x": "is not a number",
            -1: "must be positive", "": "is empty"}


@_SETTINGS
@given(runs=run_logs(), data=st.data())
def test_malformed_jsonl_row_is_named(tmp_path, runs, data):
    path = save_runs(tmp_path / "runs.jsonl", runs)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    row = data.draw(st.integers(0, len(rows) - 1))
    col = data.draw(st.sampled_from([c for c in ("n_params", "tokens", "flops", "loss", "hours") if c in rows[0]]))
    key = data.draw(st.sampled_from(list(range(len(JSON_BAD)))))
    bad = list(JSON_BAD)[key]
    rows[row][col] = bad
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(ValueError) as exc:
        load_runs(path)
    msg = str(exc.value)
    assert re.search(rf"row {row + 1} \(line {row + 1}\): column '{col}'", msg), msg
    assert JSON_BAD[bad] in msg, msg
