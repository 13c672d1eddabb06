"""End-to-end runs of the example scripts (the root conftest gives each an empty, offline store)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


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
