"""The mldebugger command: run a server, manage API keys, sync a spool, evaluate, list results.

Each sub-command lives in a module of this package with a ``register(commands)`` function that
adds its parser; adding a command is adding a module.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from ml_debugger.exceptions import MLDebuggerError


def build_parser() -> argparse.ArgumentParser:
    """The parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="mldebugger", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(dest="command", required=True)
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit status (1 on an ml-debugger error)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except (MLDebuggerError, ImportError) as exc:
        print(f"mldebugger: error: {exc}", file=sys.stderr)
        return 1
