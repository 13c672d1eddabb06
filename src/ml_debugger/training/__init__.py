"""Tracers that run a model and record per-sample traces (importing this imports torch)."""

from ml_debugger.training.classification import ClassificationTracer

__all__ = ["ClassificationTracer"]
