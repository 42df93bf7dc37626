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
    assert all(r["mean_neighbors"] <= 4 for r in rows)  # more than 4 only where distances tie
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


@pytest.mark.parametrize(
    "args, match",
    [
        (["--cutoff", "-1"], "argument --cutoff: must be a positive finite number"),
        (["--cutoff", "0"], "argument --cutoff: must be a positive"),
        (["--cutoff", "nan"], "argument --cutoff: must be a positive finite"),
        (["--cutoff", "abc"], "argument --cutoff: expected a number"),
        (["--max-neighbors", "0"], "argument --max-neighbors: must be an integer >= 1"),
        (["--n-molecules", "0"], "argument --n-molecules: must be an integer 1..90"),
        (["--n-molecules", "500"], "argument --n-molecules: must be an integer 1..90"),
        (["--json", "/nonexistent/dir/x.json"], "--json /nonexistent/dir/x.json: the folder"),
    ],
)
def test_graph_bad_input_is_an_error_message_not_a_traceback(args, match, capsys):
    """Audit defect: every bad input of `nnip-scaling graph` printed a traceback."""
    try:
        code = main(["graph", *args])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert "nnip-scaling graph: error:" in err and match in err
    assert "Traceback" not in err


def test_graph_cli_knows_the_size_of_the_builtin_set():
    from nnip_scaling._graph_cli import _N_BUILTIN
    from nnip_scaling.data import builtin_molecules

    assert _N_BUILTIN == len(builtin_molecules())


def test_runtime_errors_of_any_subcommand_are_reported_without_traceback(capsys, monkeypatch):
    import nnip_scaling._graph_cli as graph_cli

    def broken(args):
        raise ValueError("something the user can fix")

    monkeypatch.setattr(graph_cli, "run", broken)
    assert main(["graph"]) == 2
    assert capsys.readouterr().err.strip() == "nnip-scaling graph: error: something the user can fix"
    monkeypatch.setenv("NNIP_SCALING_TRACEBACK", "1")
    with pytest.raises(ValueError, match="the user can fix"):
        main(["graph"])


def test_help_lines_match_the_subcommand_modules():
    import importlib

    from nnip_scaling.cli import _SUBCOMMANDS, _help_line

    for name, module_path in _SUBCOMMANDS:
        assert importlib.import_module(module_path).HELP == _help_line(module_path) != "", name


@pytest.mark.parametrize("argv", [["--help"], ["graph", "--help"], ["--version"]])
def test_help_does_not_import_torch(argv):
    """`nnip-scaling --help` took 4 s because torch was imported eagerly; it must import none of it."""
    code = (
        "import sys\n"
        "from nnip_scaling.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'scipy', 'e3nn') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in proc.stdout, proc.stdout[-500:]
