"""Keras and TensorFlow detectors: KerasCV / KerasHub-style models (on the torch backend here, on
TensorFlow in a subprocess), TF Object Detection API SavedModels and custom models read through
``output_mapping``; the TensorFlow path never imports torch."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.store import LocalStore
from ml_debugger.training import ObjectDetectionTracer
from tests.training.detection.conftest import GT_LIST, boxes_of, check_rows, read_rows
from tests.training.detection.keras_models import TinyKerasHubDetector, custom_model

HERE = Path(__file__).parent
SIZES = [(96, 64), (96, 64)]


def images() -> np.ndarray:
    return np.random.default_rng(0).random((2, 64, 96, 3)).astype("float32")


def expected_xyxy(boxes: np.ndarray, box_format: str, width: int, height: int) -> np.ndarray:
    if box_format == "xyxy":
        return boxes
    if box_format == "xywh":
        return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    return boxes[:, [1, 0, 3, 2]] * [width, height, width, height]  # rel_yxyx


@pytest.mark.parametrize("box_format", ["xywh", "xyxy", "rel_yxyx"])
def test_kerashub_style_detector(store: LocalStore, box_format: str) -> None:
    keras.utils.set_random_seed(0)
    model = TinyKerasHubDetector(box_format)
    tracer = ObjectDetectionTracer(model, "m", "v1", store=store)
    assert type(tracer).__name__ == "KerasCVTracer" and tracer.num_classes == 3
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_image) == (0.2, 0.6, 5)
    x = images()
    out = tracer(x, GT_LIST, input_ids=[1, 2], dataset_type="val")
    assert set(out) == {"bbox_regression", "cls_logits"}  # the model's own (raw) output
    decoded = {k: keras.ops.convert_to_numpy(v) for k, v in model.decode_predictions(model(x), x).items()}
    tracer.wait_for_save()
    rows = read_rows(store)
    check_rows(rows, SIZES, (0.2, 0.6, 5))
    for i in range(2):
        n = int(decoded["num_detections"][i])
        assert 0 < n == len(rows["pred_boxes"][i])
        want = np.clip(expected_xyxy(decoded["boxes"][i][:n], box_format, 96, 64), 0, [96, 64, 96, 64])
        np.testing.assert_allclose(boxes_of(rows["pred_boxes"][i]), want, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(rows["pred_scores"][i], decoded["confidence"][i][:n], rtol=1e-6)
        assert list(rows["pred_labels"][i]) == decoded["classes"][i][:n].tolist()


def test_custom_keras_model_needs_output_mapping(store: LocalStore) -> None:
    with pytest.raises(ConfigurationError, match=r"does not recognise this Keras model.*KerasCV.*output_mapping="):
        ObjectDetectionTracer(custom_model(), "m", "v1", store=store)


def test_custom_keras_model_with_output_mapping(store: LocalStore) -> None:
    keras.utils.set_random_seed(0)
    model = custom_model()
    mapping = {"boxes": "my_boxes", "scores": "my_scores", "labels": "my_classes", "box_format": "rel_center_xywh"}
    tracer = ObjectDetectionTracer(model, "m", "v1", output_mapping=mapping, store=store)
    assert type(tracer).__name__ == "MappedOutputTracer"
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_image) == (0.05, 0.5, 300)
    x = images()
    out = tracer(x, GT_LIST, dataset_type="val")
    tracer.wait_for_save()
    rows = read_rows(store)
    check_rows(rows, SIZES, (0.05, 0.5, 300))
    scores = keras.ops.convert_to_numpy(out["my_scores"])
    for i in range(2):
        boxes, kept = boxes_of(rows["pred_boxes"][i]), np.asarray(rows["pred_scores"][i])
        assert 0 < len(kept) <= 12 and set(kept.round(5)) <= set(scores[i].round(5))
        labels = np.asarray(rows["pred_labels"][i])
        for a in range(len(boxes)):  # the 0.5 NMS applied to the copy holds within each class
            for b in range(a + 1, len(boxes)):
                assert labels[a] != labels[b] or iou(boxes[a], boxes[b]) <= 0.5 + 1e-6


def test_output_mapping_as_a_callable(store: LocalStore) -> None:
    model = custom_model()

    def read(output, inputs):
        boxes = keras.ops.convert_to_numpy(output["my_boxes"]) * 20
        return [{"boxes": np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1), "scores": s, "labels": np.zeros(12, int)}
                for b, s in zip(boxes, keras.ops.convert_to_numpy(output["my_scores"]))]

    tracer = ObjectDetectionTracer(model, "m", "v1", output_mapping=read, iou_thresh=1.0, store=store)
    tracer(images(), GT_LIST, dataset_type="val")
    tracer.wait_for_save()
    assert [len(b) for b in read_rows(store)["pred_boxes"]] == [12, 12]


def test_bad_output_mapping_names_the_valid_keys(store: LocalStore) -> None:
    with pytest.raises(ConfigurationError, match="unknown keys \\['box'\\].*valid keys: boxes, scores, labels"):
        ObjectDetectionTracer(custom_model(), "m", "v1", output_mapping={"box": "b", "scores": "s", "labels": "l"},
                              store=store)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                    reason="TensorFlow is not installed (make test installs tensorflow-cpu)")
def test_tensorflow_families_without_torch(mld_home: Path) -> None:
    """KerasCV-style, TF Object Detection API and mapped Keras models on TensorFlow, in a fresh
    process (the Keras backend is fixed at import), which must never import torch."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "MLD_HOME": str(mld_home), "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    done = subprocess.run([sys.executable, str(HERE / "tf_detection_script.py")], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().endswith("torch imported: False")
