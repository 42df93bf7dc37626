"""``nnip-scaling dataset``: the info action on the shipped set and argument handling."""

from __future__ import annotations

import json

import pytest

from nnip_scaling.cli import main


def test_info_on_the_builtin_set(capsys):
    assert main(["dataset", "info", "builtin"]) == 0
    out = capsys.readouterr().out
    assert "configurations 10000, molecules 2500" in out
    assert "train: 8000 configurations, 2000 molecules" in out
    assert "GFN2-xTB" in out
    assert main(["dataset", "info", "builtin", "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["counts"]["configurations"] == 10000


def test_info_on_a_bad_file_is_a_clean_error(tmp_path, capsys):
    (tmp_path / "x.npz").write_bytes(b"junk")
    assert main(["dataset", "info", str(tmp_path / "x.npz")]) == 2
    assert "x.npz" in capsys.readouterr().err


def test_build_requires_n_and_out():
    with pytest.raises(SystemExit) as exc:
        main(["dataset", "build", "--n", "5"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["dataset"])


def test_build_rejects_bad_numbers(tmp_path, capsys):
    pytest.importorskip("rdkit")
    pytest.importorskip("tblite")
    assert main(["dataset", "build", "--n", "0", "--out", str(tmp_path / "a.npz")]) == 2
    assert "n must be a positive int" in capsys.readouterr().err
