"""The README documents every signal, metric, category, code and setting the evaluator produces."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ml_debugger.evaluator.analysis.categories import CATEGORIES
from ml_debugger.evaluator.analysis.codes import registered_codes
from ml_debugger.evaluator.analysis.config import AnalysisConfig
from ml_debugger.evaluator.analysis.metrics import METRIC_KEYS
from ml_debugger.evaluator.analysis.signals import SIGNAL_COLUMNS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_signal_metric_category_code_and_setting_is_documented() -> None:
    names = [*SIGNAL_COLUMNS, *METRIC_KEYS, *CATEGORIES, *(f.name for f in dataclasses.fields(AnalysisConfig))]
    missing = [name for name in names if f"`{name}`" not in README]
    missing += [code.id for code in registered_codes() if f"{code.id} `{code.name}`" not in README]
    assert not missing, f"undocumented in README.md: {missing}"


def test_the_two_commands_exist() -> None:
    assert "make quickstart" in README and "make test" in README
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "\nquickstart:" in makefile and "\ntest:" in makefile


def test_the_shell_commands_to_evaluate_and_list_results_are_documented() -> None:
    from ml_debugger.cli import build_parser

    for name in ("evaluate", "results"):
        assert build_parser().parse_args([name, "my_model", "v1"]).model_name == "my_model"
        assert f"mldebugger {name} my_model v1" in README
    assert "--epoch latest|all|N" in README
