"""``mldebugger server``: run the HTTP API server."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ml_debugger.cli._common import database_url, home, with_home
from ml_debugger.exceptions import ConfigurationError

if TYPE_CHECKING:
    from ml_debugger.server import ServerConfig


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The ServerConfig of ``mldebugger server``'s options (ConfigurationError for a value out of range)."""
    from ml_debugger.server import ServerConfig

    mib = 2**20
    for option in ("max_part_mb", "max_decoded_mb", "max_json_mb", "max_connections"):
        if getattr(args, option) <= 0:
            raise ConfigurationError(f"--{option.replace('_', '-')} must be positive; got {getattr(args, option)}")
    return ServerConfig(
        home=home(args), database_url=database_url(args), max_part_bytes=int(args.max_part_mb * mib),
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


def register(commands: argparse._SubParsersAction) -> None:
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
