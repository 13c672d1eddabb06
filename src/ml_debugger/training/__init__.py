"""Tracers that run a model and record per-sample traces (importing this imports torch)."""

from ml_debugger.training.classification import ClassificationTracer
from ml_debugger.training.detection3d import ObjectDetection3DTracer

__all__ = ["ClassificationTracer", "ObjectDetection3DTracer"]
