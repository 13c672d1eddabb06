"""Evaluation of recorded traces: ``Evaluator`` and its ``Result``."""

from ml_debugger.evaluator.evaluator import Evaluator
from ml_debugger.evaluator.result import Result

__all__ = ["Evaluator", "Result"]
