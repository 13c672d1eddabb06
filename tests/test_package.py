"""The package's public surface and its promise not to import training frameworks."""

from __future__ import annotations

import subprocess
import sys

import ml_debugger
import ml_debugger.evaluator
import ml_debugger.training

HEAVY = ("torch", "tensorflow", "lightning", "pytorch_lightning", "keras", "transformers", "ultralytics", "mmengine")


def test_import_pulls_no_training_framework() -> None:
    code = (
        "import sys, ml_debugger, ml_debugger.evaluator, ml_debugger.store, ml_debugger.core, ml_debugger.tasks;"
        "import ml_debugger.tasks.detection2d.evaluation, ml_debugger.tasks.classification.evaluation;"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_names() -> None:
    assert ml_debugger.__all__ == ["__version__"]
    assert ml_debugger.training.__all__ == ["ClassificationTracer", "ObjectDetectionTracer", "ObjectDetection3DTracer"]
    assert ml_debugger.evaluator.__all__ == ["Evaluator", "Result"]


def test_training_imports_its_framework_only_when_a_tracer_needs_it() -> None:
    code = (
        "import sys; from ml_debugger.training import ObjectDetectionTracer;"
        "tracer = ObjectDetectionTracer(None, 'm', 'v1');"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_missing_framework_names_the_extra_to_install() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"  # as if torch were not installed
        "try:\n    from ml_debugger.training import ClassificationTracer\n"
        "except ImportError as error:\n    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ClassificationTracer needs torch" in out.stdout and "pip install 'ml-debugger[torch]'" in out.stdout
