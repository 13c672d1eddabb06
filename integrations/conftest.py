"""End-to-end runs of the example scripts: each test gets its own empty store and stays offline."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(autouse=True)
def mld_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mld_home"
    monkeypatch.setenv("MLD_HOME", str(home))
    monkeypatch.delenv("MLD_API_ENDPOINT", raising=False)
    monkeypatch.delenv("MLD_API_KEY", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return home


def _import_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"mld_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_script() -> Callable[[Path], ModuleType]:
    """Import an example script by its path, as a user would run it."""
    return _import_script
