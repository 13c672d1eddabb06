"""Fixtures for a real PostgreSQL: ``MLD_TEST_DATABASE_URL``, else a cluster .ci/postgres.sh starts."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "postgres.sh"
ENV_URL = "MLD_TEST_DATABASE_URL"


def _server_binary_present() -> bool:
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("initdb"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """An admin URL of a running PostgreSQL server (skips, saying why, when there is none)."""
    pytest.importorskip("psycopg", reason="the PostgreSQL catalog needs psycopg 3: pip install 'psycopg[binary]'")
    url = os.environ.get(ENV_URL)
    if url:
        yield url
        return
    if not _server_binary_present():
        pytest.skip(f"no PostgreSQL: {ENV_URL} is unset and no server binary is installed "
                    "(`bash .ci/postgres.sh start` installs one and prints the URL)")
    env = dict(os.environ, MLD_PG_STATE=f"/tmp/mld-postgres-tests-{os.getpid()}")
    started = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=180)
    if started.returncode != 0 or not started.stdout.strip():
        pytest.skip(f"could not start PostgreSQL with {SCRIPT.name}: {started.stderr[-500:]}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=60)


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    import psycopg

    name = f"mld_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield urlsplit(postgres_url)._replace(path=f"/{name}").geturl()
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
