"""Two evaluation results compared unit by unit, and a quality gate on the comparison.

``compare_results(baseline, candidate)`` returns a :class:`Comparison` (metrics side by side,
category transitions, fixed / newly broken / still wrong units, error codes and hotspot clusters
that grew or vanished, units on one side only); ``Evaluator.compare`` does the same for stored
results. ``check(comparison, Rules(...))`` turns a comparison into a pass/fail ``GateResult``.
"""

from ml_debugger.evaluator.compare.comparison import Comparison, InputChangedWarning, compare_results
from ml_debugger.evaluator.compare.gate import GateResult, check
from ml_debugger.evaluator.compare.rules import Rules

__all__ = ["Comparison", "GateResult", "InputChangedWarning", "Rules", "check", "compare_results"]
