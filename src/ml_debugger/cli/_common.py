"""What several sub-commands share: where the store is, and the evaluator of a model version."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ml_debugger.config import DEFAULT_HOME, ENV_API_ENDPOINT, ENV_API_KEY, ENV_HOME, Settings

ENV_DATABASE_URL = "MLD_DATABASE_URL"


def home(args: argparse.Namespace) -> Path:
    """``--home``, else ``$MLD_HOME``, else ``./mldebugger``."""
    return Path(args.home or os.environ.get(ENV_HOME) or DEFAULT_HOME)


def database_url(args: argparse.Namespace) -> str | None:
    return args.database_url or os.environ.get(ENV_DATABASE_URL) or None


def with_home(sub: argparse.ArgumentParser, database: bool = False) -> argparse.ArgumentParser:
    """Add ``--home`` (and ``--database-url``) to a sub-command's parser."""
    sub.add_argument("--home", help=f"the store's directory (default: ${ENV_HOME} or ./{DEFAULT_HOME})")
    if database:
        sub.add_argument("--database-url", help=f"postgresql://... catalog (default: ${ENV_DATABASE_URL}; "
                                                "else <home>/catalog.sqlite)")
    return sub


def settings(args: argparse.Namespace) -> Settings:
    """The store the command works on: ``$MLD_API_ENDPOINT`` when set, else the local home."""
    return Settings(
        home=home(args), api_endpoint=os.environ.get(ENV_API_ENDPOINT) or None,
        api_key=os.environ.get(ENV_API_KEY) or None,
    )


def evaluator(args: argparse.Namespace):
    """The ``Evaluator`` of ``args.model_name`` / ``args.version_name`` on `settings`."""
    from ml_debugger.evaluator import Evaluator
    from ml_debugger.store import open_store

    return Evaluator(args.model_name, args.version_name, store=open_store(settings(args)))


def import_formats(commands: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-commands of ``mldebugger import`` (made on first use), one per format."""
    if "import" not in commands.choices:
        parser = commands.add_parser("import", help="record predictions made elsewhere as a committed epoch")
        parser.set_defaults(formats=parser.add_subparsers(dest="format", required=True))
    return commands.choices["import"].get_default("formats")
