"""Fixtures shared by tests/ and integrations/: every test runs offline on its own empty MLD_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_debugger.store import LocalStore


@pytest.fixture(autouse=True)
def mld_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mld_home"
    monkeypatch.setenv("MLD_HOME", str(home))
    monkeypatch.delenv("MLD_API_ENDPOINT", raising=False)
    monkeypatch.delenv("MLD_API_KEY", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return home


@pytest.fixture
def store(mld_home: Path) -> LocalStore:
    return LocalStore(mld_home)
