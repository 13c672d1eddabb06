"""The digits store, built once per test session (training and evaluating three versions takes seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_debugger.store import LocalStore
from tests.evaluator.compare.digits import Digits, build


@pytest.fixture(scope="session")
def digits_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Digits]:
    home = tmp_path_factory.mktemp("digits") / "home"
    return home, build(LocalStore(home))


@pytest.fixture
def digits(digits_home: tuple[Path, Digits]) -> Digits:
    return digits_home[1]


@pytest.fixture
def digits_store(digits_home: tuple[Path, Digits]) -> LocalStore:
    return LocalStore(digits_home[0])
