"""The public surface of ml_debugger.evaluator.compare is exactly what is intended."""

from __future__ import annotations

import ml_debugger.evaluator.compare as compare
from ml_debugger.evaluator import Evaluator


def test_public_names() -> None:
    assert compare.__all__ == ["Comparison", "GateResult", "InputChangedWarning", "Rules", "check", "compare_results"]
    assert all(hasattr(compare, name) for name in compare.__all__)
    assert callable(Evaluator.compare)
