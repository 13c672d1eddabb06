"""A real ml-debugger server in a subprocess on 127.0.0.1 (optionally behind injected faults)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ml_debugger.server.keys import KeyRing
from ml_debugger.store.local import LocalStore

FAULT_SERVER = Path(__file__).with_name("fault_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``mldebugger server`` (or, with ``faults``, the fault-injecting wrapper) on a free port."""

    def __init__(
        self, home: Path, *, port: int | None = None, database_url: str | None = None,
        faults: dict | None = None, max_part_mb: float | None = None, options: tuple[str, ...] = (),
    ) -> None:
        self.home = home
        self.port = port or free_port()
        self.database_url = database_url
        self.faults = faults
        self.max_part_mb = max_part_mb
        self.options = options
        self.process: subprocess.Popen | None = None
        self.log = home.parent / f"server-{self.port}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not running"
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = ["--home", str(self.home), "--host", "127.0.0.1", "--port", str(self.port)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        if self.max_part_mb:
            args += ["--max-part-mb", str(self.max_part_mb)]
        args += list(self.options)
        if self.faults is not None:
            return [sys.executable, str(FAULT_SERVER), *args]
        return [sys.executable, "-m", "ml_debugger.cli", "server", *args]

    def start(self, timeout: float = 60.0) -> LiveServer:
        env = dict(os.environ)
        if self.faults is not None:
            env["MLD_TEST_FAULTS"] = json.dumps(self.faults)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the server did not start within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)
        self.process = None

    def create_key(self, name: str = "test") -> str:
        return KeyRing(self.store().catalog).create(name)[1]

    def store(self) -> LocalStore:
        """The server's store, opened directly (to check what it holds)."""
        return LocalStore(self.home, database_url=self.database_url)
