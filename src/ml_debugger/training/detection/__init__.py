"""2-D object detection tracers: `ObjectDetectionTracer` finds a detector's family and returns its
tracer (a `DetectionTracer`). Importing this package imports no training framework; a family's
adapter (and its framework) is imported when a model of that family is traced."""

from ml_debugger.training.detection._base import DetectionTracer
from ml_debugger.training.detection._factory import ObjectDetectionTracer, detector_class

__all__ = ["DetectionTracer", "ObjectDetectionTracer", "detector_class"]
