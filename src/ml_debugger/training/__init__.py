"""Tracers that run a model and record per-sample traces.

Importing this package imports no training framework: each tracer is imported on first use
(``ClassificationTracer`` and ``ObjectDetection3DTracer`` need torch; ``ObjectDetectionTracer``
imports a framework only for a model of that framework).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml_debugger.training.classification import ClassificationTracer
    from ml_debugger.training.detection import ObjectDetectionTracer
    from ml_debugger.training.detection3d import ObjectDetection3DTracer

__all__ = ["ClassificationTracer", "ObjectDetectionTracer", "ObjectDetection3DTracer"]

_MODULES = {
    "ClassificationTracer": "ml_debugger.training.classification",
    "ObjectDetectionTracer": "ml_debugger.training.detection",
    "ObjectDetection3DTracer": "ml_debugger.training.detection3d",
}
_EXTRAS = {
    "torch": "torch", "torchvision": "torch", "keras": "keras", "ultralytics": "ultralytics", "mmengine": "mmengine",
    "mmcv": "mmengine", "mmdet3d": "mmengine",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(_MODULES[name])
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in _EXTRAS:
            raise
        raise ImportError(
            f"{name} needs {missing}, which is not installed: pip install 'ml-debugger[{_EXTRAS[missing]}]'"
        ) from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
