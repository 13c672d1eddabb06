"""API keys: format, hashing at rest, verification and revocation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.server.keys import KeyRing, hash_key
from ml_debugger.store.catalog import Catalog


def test_keys_verify_until_revoked_and_only_hashes_are_stored(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite")
    ring = KeyRing(catalog)
    key_id, key = ring.create("alice")
    other_id, other = ring.create()
    assert key.startswith(f"mldbg_{key_id}_") and len(key) == 6 + 12 + 1 + 43
    assert catalog.active_key_hash(key_id) == hash_key(key) != key
    assert key not in (tmp_path / "catalog.sqlite").read_bytes().decode("latin-1")
    assert ring.verify(key) == key_id and ring.verify(other) == other_id
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert ring.verify(forged) is None
    assert ring.verify(f"mldbg_{key_id}_" + other.split("_", 2)[2]) is None  # another key's secret
    assert ring.verify("") is None and ring.verify("mldbg_") is None and ring.verify(key + "x") is None
    assert ring.revoke(key_id) and ring.verify(key) is None and ring.verify(other) == other_id
    assert [k["name"] for k in ring.list()] == ["alice", ""]
    with pytest.raises(ConfigurationError, match="is not a key id"):
        ring.revoke("'; DROP TABLE api_keys; --")


def test_importing_the_package_imports_no_server_or_http_library() -> None:
    code = (
        "import sys, ml_debugger, ml_debugger.store, ml_debugger.server, ml_debugger.server.keys, ml_debugger.cli;"
        "print(','.join(m for m in ('fastapi', 'uvicorn', 'starlette', 'httpx', 'psycopg', 'torch') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
