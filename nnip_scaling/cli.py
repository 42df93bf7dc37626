"""The ``nnip-scaling`` command.

Each subcommand lives in its own module, which defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``. Subcommand modules keep heavy or optional imports inside ``run`` so that
``nnip-scaling --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from nnip_scaling._version import __version__

# (subcommand name, module path). Add one line per subcommand.
_SUBCOMMANDS: list[tuple[str, str]] = [
    ("graph", "nnip_scaling._graph_cli"),
    ("dataset", "nnip_scaling.data.cli"),
    ("fit", "nnip_scaling.scaling.cli"),
    ("kappa", "nnip_scaling.flops.cli"),
    ("study", "nnip_scaling.study.cli"),
]


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="nnip-scaling",
        description="Build, count and scale neural interatomic potentials.",
    )
    parser.add_argument("--version", action="version", version=f"nnip_scaling {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_path in _SUBCOMMANDS:
        module = importlib.import_module(module_path)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nnip-scaling`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
