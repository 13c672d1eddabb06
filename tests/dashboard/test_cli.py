"""``mldebugger ui``: loopback only, a free port on request, a clear error for a busy one."""

from __future__ import annotations

import pytest

from ml_debugger.cli import build_parser
from ml_debugger.cli.ui import HOST, bind
from ml_debugger.exceptions import ConfigurationError


def test_ui_takes_home_and_port_and_no_host() -> None:
    args = build_parser().parse_args(["ui", "--home", "/tmp/x", "--port", "0"])
    assert (args.home, args.port) == ("/tmp/x", 0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ui", "--host", "0.0.0.0"])


def test_port_zero_binds_a_free_loopback_port_and_a_busy_port_is_a_clear_error() -> None:
    with bind(0) as sock:
        sock.listen()
        host, port = sock.getsockname()
        assert host == HOST == "127.0.0.1" and port > 0
        with pytest.raises(ConfigurationError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind(port)
