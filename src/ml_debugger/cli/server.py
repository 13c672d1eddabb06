"""``mldebugger server``: run the HTTP API server."""

from __future__ import annotations

import argparse

from ml_debugger.cli._common import database_url, home, with_home
from ml_debugger.exceptions import ConfigurationError


def cmd_server(args: argparse.Namespace) -> int:
    from ml_debugger.server import ServerConfig, create_app

    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError(f"`mldebugger server` needs uvicorn ({exc}): pip install 'ml-debugger[server]'") from exc
    if args.max_part_mb <= 0:
        raise ConfigurationError(f"--max-part-mb must be positive; got {args.max_part_mb}")
    config = ServerConfig(
        home=home(args), database_url=database_url(args), max_part_bytes=int(args.max_part_mb * 2**20)
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    server = with_home(commands.add_parser("server", help="run the HTTP API server"), database=True)
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8080)
    server.add_argument("--max-part-mb", type=float, default=512.0, help="largest part upload accepted (MiB)")
    server.set_defaults(run=cmd_server)
