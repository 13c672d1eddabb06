"""``mldebugger sync``: upload what a spool still holds to its server."""

from __future__ import annotations

import argparse
import os

from ml_debugger.cli._common import home, with_home
from ml_debugger.config import ENV_API_ENDPOINT, ENV_API_KEY


def cmd_sync(args: argparse.Namespace) -> int:
    from ml_debugger.store.api import ApiClient
    from ml_debugger.store.spool import Spool
    from ml_debugger.store.uploader import Uploader

    endpoint = args.endpoint or os.environ.get(ENV_API_ENDPOINT)
    spools = [s for s in Spool.existing(home(args)) if endpoint is None or s.endpoint == endpoint.rstrip("/")]
    if not spools:
        print(f"Nothing to sync: no spool under {home(args) / 'spool'}{f' for {endpoint}' if endpoint else ''}.")
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


def register(commands: argparse._SubParsersAction) -> None:
    sync = with_home(commands.add_parser("sync", help="upload what a spool still holds to its server"))
    sync.add_argument("--endpoint", help=f"only this server's spool (default: ${ENV_API_ENDPOINT}; else every spool)")
    sync.add_argument("--api-key", help=f"the key to send (default: ${ENV_API_KEY})")
    sync.add_argument("--timeout", type=float, default=300.0, help="seconds to keep retrying (default 300)")
    sync.set_defaults(run=cmd_sync)
