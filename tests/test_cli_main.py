from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nnip_scaling import __version__
from nnip_scaling.cli import build_parser, main


def test_graph_command(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["graph", "--cutoff", "3.0", "6.0", "--max-neighbors", "4", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "built-in molecules: 90 molecules" in text
    rows = json.loads(out.read_text())
    assert [r["cutoff"] for r in rows] == [3.0, 6.0]
    assert all(r["max_neighbors_seen"] <= 4 for r in rows)
    assert rows[0]["n_edges"] <= rows[1]["n_edges"]


def test_version_and_unknown_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_every_subcommand_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert p.description, name


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "nnip_scaling.cli", "graph", "--cutoff", "4"], capture_output=True, text=True)
    assert proc.returncode == 0 and "mean nbrs" in proc.stdout
