"""``mldebugger keys``: create, list and revoke API keys."""

from __future__ import annotations

import argparse
import sys

from ml_debugger.cli._common import database_url, home, with_home


def _key_ring(args: argparse.Namespace):
    from ml_debugger.server.keys import KeyRing
    from ml_debugger.store.local import LocalStore

    return KeyRing(LocalStore(home(args), database_url=database_url(args)).catalog)


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


def register(commands: argparse._SubParsersAction) -> None:
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
