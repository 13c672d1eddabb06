"""Fixtures of the dashboard tests: a real store, real servers, and Debian's headless Chromium.

``playwright install`` cannot download browsers here, so pytest-playwright launches the system's
``chromium-headless-shell`` (or ``chromium``); ``.ci/run`` installs it. Browser tests skip, saying
why, only when neither is installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.dashboard.data import StoreData, build_store
from tests.dashboard.servers import ServerProcess, copy_home

BROWSERS = ("/usr/lib/chromium/chromium-headless-shell", "/usr/bin/chromium-headless-shell", "/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
LOCAL_HOSTS = ("127.0.0.1",)


@pytest.fixture(scope="session")
def store_data(tmp_path_factory: pytest.TempPathFactory) -> StoreData:
    """The traced and evaluated digits store (shared by every dashboard test; servers get copies)."""
    return build_store(tmp_path_factory.mktemp("dashboard") / "home")


@pytest.fixture(scope="session")
def servers(store_data: StoreData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """``mldebugger ui`` and a keyed ``mldebugger server``, each on a copy of the store, started together."""
    started = {
        "ui": ServerProcess.ui(copy_home(store_data, tmp_path_factory.mktemp("ui") / "home")),
        "keyed": ServerProcess.keyed(copy_home(store_data, tmp_path_factory.mktemp("keyed") / "home")),
    }
    try:
        yield {name: server.wait() for name, server in started.items()}
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="session")
def keyed_server(servers: dict[str, ServerProcess]) -> ServerProcess:
    return servers["keyed"]


@pytest.fixture(scope="session")
def base_url(servers: dict[str, ServerProcess]) -> str:
    """The ui server's root (pytest-playwright resolves ``page.goto('/dashboard/...')`` against it)."""
    return servers["ui"].root


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    executable = next((path for path in BROWSERS if Path(path).exists()), None)
    if executable is None:
        pytest.skip(f"no Chromium installed (looked for {BROWSERS}); .ci/run installs chromium-headless-shell")
    return {**browser_type_launch_args, "executable_path": executable, "args": BROWSER_ARGS}


@pytest.fixture
def outside_requests(context) -> list[str]:
    """Every request a page of this test tried to send off the machine (each one is aborted)."""
    refused: list[str] = []

    def route(request_route) -> None:
        if urlsplit(request_route.request.url).hostname in LOCAL_HOSTS:
            request_route.continue_()
        else:
            refused.append(request_route.request.url)
            request_route.abort()

    context.route("**/*", route)
    return refused
