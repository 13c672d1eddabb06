"""ml-debugger servers in subprocesses for the browser tests: ``mldebugger ui`` and a keyed server."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ml_debugger.server.keys import KeyRing
from ml_debugger.store import LocalStore
from tests.dashboard.data import StoreData
from tests.server.live import free_port


def copy_home(data: StoreData, target: Path) -> Path:
    shutil.copytree(data.home, target)
    return target


class ServerProcess:
    """An ml-debugger server started in a subprocess; `wait` returns once ``url`` answers."""

    def __init__(self, home: Path, command: list[str], url: str | None = None) -> None:
        self.home = home
        self.url = url
        self.log = home.parent / "server.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ml_debugger.cli", *command, "--home", str(home)],
                stdout=log, stderr=subprocess.STDOUT,
            )

    @classmethod
    def ui(cls, home: Path) -> ServerProcess:
        """``mldebugger ui --port 0``: its URL is the one it prints."""
        return cls(home, ["ui", "--port", "0"])

    @classmethod
    def keyed(cls, home: Path) -> ServerProcess:
        """``mldebugger server``: API keys required."""
        port = free_port()
        return cls(home, ["server", "--host", "127.0.0.1", "--port", str(port)], f"http://127.0.0.1:{port}")

    @property
    def root(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def wait(self, timeout: float = 90.0) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.url is None:
                printed = [w for w in self.log.read_text().split() if w.startswith("http://")]
                self.url = printed[0] if printed else None
            if self.url is not None and self._answers(f"{self.root}/api/v1/health"):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not start:\n{self.log.read_text()[-3000:]}")

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def create_key(self, name: str = "test") -> str:
        return KeyRing(LocalStore(self.home).catalog).create(name)[1]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
