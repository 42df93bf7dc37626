"""The ``nnip-scaling`` command.

Each subcommand lives in its own module, which defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``. Only the module of the subcommand being run is imported, so
``nnip-scaling --help`` imports neither torch nor any subcommand (``tests/test_cli_main.py`` checks
it); subcommand modules keep heavy or optional imports inside ``run`` as well.

Errors a user can fix (``ValueError``, ``OSError`` such as a missing file, ``ImportError`` of an
optional extra) are printed as ``nnip-scaling COMMAND: error: ...`` with exit status 2, not as a
traceback; set ``NNIP_SCALING_TRACEBACK=1`` to see the traceback.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from nnip_scaling._version import __version__

# (subcommand name, module path). Add one line per subcommand.
_SUBCOMMANDS: list[tuple[str, str]] = [
    ("graph", "nnip_scaling._graph_cli"),
    ("dataset", "nnip_scaling.data.cli"),
    ("fit", "nnip_scaling.scaling.cli"),
    ("kappa", "nnip_scaling.flops.cli"),
    ("study", "nnip_scaling.study.cli"),
]


def _help_line(module_path: str) -> str:
    """The module's ``HELP`` string, read from its source without importing it (or its package,
    whose ``__init__`` may import torch)."""
    parts = module_path.split(".")
    path = Path(__file__).resolve().parent.joinpath(*parts[1:]).with_suffix(".py")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):  # pragma: no cover - a broken install; importing will say more
        return ""
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "HELP" for t in node.targets)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return node.value.value
    return ""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the top-level argument parser.

    Args:
        only: import and register the arguments of this subcommand only (the others are listed with
            their help line); ``None`` imports every subcommand module.
    """
    parser = argparse.ArgumentParser(
        prog="nnip-scaling",
        description="Build, count and scale neural interatomic potentials.",
    )
    parser.add_argument("--version", action="version", version=f"nnip_scaling {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_path in _SUBCOMMANDS:
        help_line = _help_line(module_path)
        p = sub.add_parser(name, help=help_line, description=help_line)
        if only is None or name == only:
            module = importlib.import_module(module_path)
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first argument that is not an option), if any."""
    names = {name for name, _ in _SUBCOMMANDS}
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in names else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nnip-scaling`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command(argv)
    parser = build_parser(only=command or "")
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, OSError, ImportError) as err:
        if os.environ.get("NNIP_SCALING_TRACEBACK"):
            raise
        message = str(err) or type(err).__name__
        if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in message:
            message = f"{err.filename}: {message}"
        print(f"nnip-scaling {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
