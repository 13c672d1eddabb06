"""The ``mldebugger`` command: run a server, manage API keys, sync a spool, evaluate, list results."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ml_debugger.config import DEFAULT_HOME, ENV_API_ENDPOINT, ENV_API_KEY, ENV_HOME, Settings
from ml_debugger.exceptions import ConfigurationError, MLDebuggerError

if TYPE_CHECKING:
    from ml_debugger.server import ServerConfig

ENV_DATABASE_URL = "MLD_DATABASE_URL"


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home or os.environ.get(ENV_HOME) or DEFAULT_HOME)


def _database_url(args: argparse.Namespace) -> str | None:
    return args.database_url or os.environ.get(ENV_DATABASE_URL) or None


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The ServerConfig of ``mldebugger server``'s options (ConfigurationError for a value out of range)."""
    from ml_debugger.server import ServerConfig

    mib = 2**20
    for option in ("max_part_mb", "max_decoded_mb", "max_json_mb", "max_connections"):
        if getattr(args, option) <= 0:
            raise ConfigurationError(f"--{option.replace('_', '-')} must be positive; got {getattr(args, option)}")
    return ServerConfig(
        home=_home(args), database_url=_database_url(args), max_part_bytes=int(args.max_part_mb * mib),
        max_part_rows=args.max_part_rows, max_decoded_bytes=int(args.max_decoded_mb * mib),
        max_json_bytes=int(args.max_json_mb * mib), max_commit_parts=args.max_commit_parts,
        max_uploads=args.max_uploads, body_timeout=args.body_timeout, min_body_rate=args.min_body_kib_per_s * 1024,
        uncommitted_grace=args.uncommitted_grace_hours * 3600,
    )


def cmd_server(args: argparse.Namespace) -> int:
    from ml_debugger.server import create_app

    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError(f"`mldebugger server` needs uvicorn ({exc}): pip install 'ml-debugger[server]'") from exc
    uvicorn.run(
        create_app(server_config(args)), host=args.host, port=args.port, log_level=args.log_level,
        limit_concurrency=args.max_connections,
    )
    return 0


def _key_ring(args: argparse.Namespace):
    from ml_debugger.server.keys import KeyRing
    from ml_debugger.store.local import LocalStore

    return KeyRing(LocalStore(_home(args), database_url=_database_url(args)).catalog)


def cmd_keys_create(args: argparse.Namespace) -> int:
    key_id, key = _key_ring(args).create(args.name)
    print(f"Created API key {key_id}{f' ({args.name})' if args.name else ''}. It is shown only now; keep it secret.")
    print("Clients use it as MLD_API_KEY; `mldebugger keys revoke " + key_id + "` disables it.")
    print(key)
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    if not _key_ring(args).revoke(args.key_id):
        print(f"mldebugger: no active API key with id {args.key_id!r} (see `mldebugger keys list`)", file=sys.stderr)
        return 1
    print(f"Revoked API key {args.key_id}.")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    keys = _key_ring(args).list()
    print(f"{'id':<14}{'name':<20}{'created_at':<34}revoked_at")
    for key in keys:
        print(f"{key['id']:<14}{key['name'] or '-':<20}{key['created_at']:<34}{key['revoked_at'] or '-'}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from ml_debugger.store.api import ApiClient
    from ml_debugger.store.spool import Spool
    from ml_debugger.store.uploader import Uploader

    endpoint = args.endpoint or os.environ.get(ENV_API_ENDPOINT)
    spools = [s for s in Spool.existing(_home(args)) if endpoint is None or s.endpoint == endpoint.rstrip("/")]
    if not spools:
        print(f"Nothing to sync: no spool under {_home(args) / 'spool'}{f' for {endpoint}' if endpoint else ''}.")
        return 0
    complete = True
    for spool in spools:
        client = ApiClient(spool.endpoint, args.api_key or os.environ.get(ENV_API_KEY))
        uploader = Uploader(client, spool)
        tasks = uploader.load_spool()
        drained = uploader.drain(args.timeout)
        uploader.close()
        client.close()
        sent = [t for t in tasks if t.done.is_set() and t.error is None]
        refused = [t for t in tasks if t.error is not None]
        print(f"{spool.endpoint}: sent {len(sent)} of {len(tasks)} spooled items "
              f"({sum(t.kind == 'part' for t in sent)} parts, {sum(t.kind == 'commit' for t in sent)} commits)")
        for task in refused:
            print(f"  refused: {task.describe()}: {task.error}")
        if not drained:
            print(f"  not sent within {args.timeout:g} s ({uploader.last_error}); still in {spool.root}")
        complete = complete and drained and not refused
    return 0 if complete else 1


def _evaluator(args: argparse.Namespace):
    from ml_debugger.evaluator import Evaluator
    from ml_debugger.store import open_store

    settings = Settings(
        home=_home(args), api_endpoint=os.environ.get(ENV_API_ENDPOINT) or None,
        api_key=os.environ.get(ENV_API_KEY) or None,
    )
    return Evaluator(args.model_name, args.version_name, store=open_store(settings))


def cmd_results(args: argparse.Namespace) -> int:
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.max_colwidth", 40):
        print(_evaluator(args).list_results().to_string(index=False))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    epoch: str | int | None = {"latest": "latest", "all": None}.get(args.epoch, args.epoch)
    if isinstance(epoch, str) and epoch != "latest":
        if not epoch.isdigit():
            raise ConfigurationError(f"--epoch must be 'latest', 'all' or an epoch number; got {epoch!r}")
        epoch = int(epoch)
    result = _evaluator(args).request_evaluation(result_name=args.name, n_epoch=epoch)
    result.get_summary()
    print(f"\nStored as result {result.name!r}.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mldebugger", description=__doc__)
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(dest="command", required=True)

    def with_home(sub: argparse.ArgumentParser, database: bool = False) -> argparse.ArgumentParser:
        sub.add_argument("--home", help=f"the store's directory (default: ${ENV_HOME} or ./{DEFAULT_HOME})")
        if database:
            sub.add_argument("--database-url", help=f"postgresql://... catalog (default: ${ENV_DATABASE_URL}; "
                                                    "else <home>/catalog.sqlite)")
        return sub

    server = with_home(commands.add_parser("server", help="run the HTTP API server"), database=True)
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8080)
    server.add_argument("--max-part-mb", type=float, default=512.0, help="largest part upload accepted (MiB)")
    server.add_argument("--max-part-rows", type=int, default=1_048_576, help="most rows in one part")
    server.add_argument("--max-decoded-mb", type=float, default=1024.0,
                        help="most MiB a part may decode to (estimated from its footer before decoding)")
    server.add_argument("--max-json-mb", type=float, default=4.0, help="largest JSON request body (MiB)")
    server.add_argument("--max-commit-parts", type=int, default=10_000, help="most parts in one commit")
    server.add_argument("--max-uploads", type=int, default=16, help="part uploads received at once (more get 503)")
    server.add_argument("--max-connections", type=int, default=256,
                        help="connections and requests served at once; more get 503 at once")
    server.add_argument("--body-timeout", type=float, default=30.0,
                        help="seconds a request body may send nothing before it is refused (408)")
    server.add_argument("--min-body-kib-per-s", type=float, default=64.0,
                        help="slowest average body rate accepted after --body-timeout seconds (KiB/s; 0: any)")
    server.add_argument("--uncommitted-grace-hours", type=float, default=24.0,
                        help="hours an uploaded part may wait for its commit before it is removed")
    server.set_defaults(run=cmd_server)

    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    keys = keys.add_subparsers(dest="action", required=True)
    create = with_home(keys.add_parser("create", help="create a key; it is printed once, as the last line"), True)
    create.add_argument("--name", default="", help="a note on who or what uses the key")
    create.set_defaults(run=cmd_keys_create)
    revoke = with_home(keys.add_parser("revoke", help="revoke a key by its id"), True)
    revoke.add_argument("key_id")
    revoke.set_defaults(run=cmd_keys_revoke)
    with_home(keys.add_parser("list", help="list keys (ids and names, never the keys)"), True).set_defaults(
        run=cmd_keys_list
    )

    sync = with_home(commands.add_parser("sync", help="upload what a spool still holds to its server"))
    sync.add_argument("--endpoint", help=f"only this server's spool (default: ${ENV_API_ENDPOINT}; else every spool)")
    sync.add_argument("--api-key", help=f"the key to send (default: ${ENV_API_KEY})")
    sync.add_argument("--timeout", type=float, default=300.0, help="seconds to keep retrying (default 300)")
    sync.set_defaults(run=cmd_sync)

    for name, run, text in (("results", cmd_results, "list the stored results of a model version"),
                            ("evaluate", cmd_evaluate, "evaluate a model version and print the summary")):
        sub = with_home(commands.add_parser(name, help=text + f" (on ${ENV_API_ENDPOINT} when set)"))
        sub.add_argument("model_name")
        sub.add_argument("version_name")
        sub.set_defaults(run=run)
    evaluate = commands.choices["evaluate"]
    evaluate.add_argument("--epoch", default="latest", help="'latest' (default), 'all', or an epoch number")
    evaluate.add_argument("--name", help="the result's name (generated when absent)")
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


if __name__ == "__main__":
    sys.exit(main())
