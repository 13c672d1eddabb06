"""``mldebugger ui``: the web dashboard on the embedded store, for this machine only (no key)."""

from __future__ import annotations

import argparse
import socket

from ml_debugger.cli._common import home, with_home
from ml_debugger.exceptions import ConfigurationError

HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def bind(port: int) -> socket.socket:
    """A listening socket on ``127.0.0.1:port`` (0: a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {HOST}:{port} ({exc}); pick another --port, or 0 for any") from exc
    return sock


def cmd_ui(args: argparse.Namespace) -> int:
    from ml_debugger.server import ServerConfig, create_app

    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError(f"`mldebugger ui` needs uvicorn ({exc}): pip install 'ml-debugger[server]'") from exc
    if not 0 <= args.port <= 65535:
        raise ConfigurationError(f"--port must be between 0 and 65535; got {args.port}")
    store_home = home(args)
    empty = not (store_home / "catalog.sqlite").exists()
    app = create_app(ServerConfig(home=store_home, local_only=True))
    sock = bind(args.port)
    url = f"http://{HOST}:{sock.getsockname()[1]}/dashboard/"
    print(f"ml-debugger dashboard for {store_home.resolve()}: open {url}  (Ctrl+C stops it)", flush=True)
    if empty:
        print(f"(no store in {store_home} yet: run examples/quickstart.py or set --home / MLD_HOME)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level))
    server.run(sockets=[sock])
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    ui = with_home(commands.add_parser("ui", help="open the web dashboard on the local store (this machine only)"))
    ui.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port on {HOST} (default {DEFAULT_PORT}; 0: any free port)"
    )
    ui.set_defaults(run=cmd_ui)
