"""The mldebugger command line: keys, a server on PostgreSQL, results and evaluate against it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from ml_debugger.core import TraceSession
from ml_debugger.store.catalog import Catalog
from ml_debugger.store.remote import RemoteStore
from tests.server.parts import make_batch

pytest.importorskip("fastapi", reason="the server tests need the server extra: pip install 'ml-debugger[server]'")
KEY = re.compile(r"mldbg_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


def mldebugger(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml_debugger.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_keys_create_list_revoke(make_server, tmp_path: Path) -> None:
    home = tmp_path / "server-home"
    created = mldebugger("keys", "create", "--home", str(home), "--name", "ci")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert KEY.fullmatch(key)
    key_id = key[6:18]
    assert key not in (home / "catalog.sqlite").read_bytes().decode("latin-1")  # only its hash is stored

    listed = mldebugger("keys", "list", "--home", str(home))
    assert key_id in listed.stdout and "ci" in listed.stdout and key not in listed.stdout

    server = make_server(home=home).start()
    url = f"{server.url}/api/v1/models/nothing"
    assert httpx.get(url, headers={"Authorization": f"Bearer {key}"}).status_code == 404
    assert mldebugger("keys", "revoke", key_id, "--home", str(home)).returncode == 0
    assert httpx.get(url, headers={"Authorization": f"Bearer {key}"}).status_code == 401
    again = mldebugger("keys", "revoke", key_id, "--home", str(home))
    assert again.returncode == 1 and "no active API key" in again.stderr
    bad = mldebugger("keys", "revoke", "../etc", "--home", str(home))
    assert bad.returncode == 1 and "is not a key id" in bad.stderr


def test_a_server_on_postgresql(make_server, tmp_path: Path, database_url: str) -> None:
    home = tmp_path / "server-home"
    created = mldebugger("keys", "create", "--home", str(home), "--database-url", database_url)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    server = make_server(home=home, database_url=database_url).start()

    store = RemoteStore(server.url, key, home=tmp_path / "client")
    session = TraceSession("pg", "v1", "classification", store=store, rows_per_part=150)
    for epoch in (0, 1):
        session.record(make_batch(np.arange(300), seed=epoch), dataset_type="val", n_epoch=epoch)
    session.wait_for_save()
    catalog = Catalog(database_url)
    assert catalog.committed_epochs("pg", "v1") == [0, 1]
    assert not (home / "catalog.sqlite").exists()

    env = dict(os.environ, MLD_API_ENDPOINT=server.url, MLD_API_KEY=key, MLD_HOME=str(tmp_path / "client"))
    evaluated = mldebugger("evaluate", "pg", "v1", "--epoch", "all", "--name", "from-cli", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "Issue categories" in evaluated.stdout and "Stored as result 'from-cli'" in evaluated.stdout
    listed = mldebugger("results", "pg", "v1", env=env)
    assert "from-cli" in listed.stdout and "[0, 1]" in listed.stdout
    assert catalog.job(catalog_job_id(catalog))["status"] == "succeeded"
    duplicate = mldebugger("evaluate", "pg", "v1", "--name", "from-cli", env=env)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr


def catalog_job_id(catalog: Catalog) -> str:
    with catalog.db.transaction() as db:
        return db.query("SELECT id FROM jobs")[0][0]
