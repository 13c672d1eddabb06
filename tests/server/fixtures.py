"""Fixtures shared by the server and remote-store tests (imported by their modules)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.server.live import LiveServer


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for a whole test module (tests use their own model names); parts up to 1 MiB."""
    server = LiveServer(tmp_path_factory.mktemp("server") / "home", max_part_mb=1).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_key(live_server: LiveServer) -> str:
    return live_server.create_key("module")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Build (not start) servers whose home is under this test's tmp_path; all are killed at teardown."""
    servers: list[LiveServer] = []

    def make(**kwargs) -> LiveServer:
        server = LiveServer(kwargs.pop("home", tmp_path / "server-home"), **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.kill()
