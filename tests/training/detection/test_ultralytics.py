"""Ultralytics YOLO traced from a YOLO object or its DetectionModel: boxes equal Ultralytics' own
predictor's in original pixels, thresholds from the model's overrides and args, neck features."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

CONFIG_DIR = Path(tempfile.gettempdir()) / "mld-ultralytics-tests"
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(CONFIG_DIR))
ultralytics = pytest.importorskip("ultralytics")

from ultralytics import YOLO
from ultralytics.data.augment import LetterBox
from ultralytics.utils import ops

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.store import LocalStore
from ml_debugger.training import ObjectDetectionTracer
from ml_debugger.training.detection._ultralytics import letterbox
from tests.training.detection.conftest import GT_LIST, boxes_of, check_rows, read_rows

SIZES = [(96, 64), (80, 96)]  # (width, height); with imgsz 96 both are padded, not resized


@pytest.fixture(scope="module", autouse=True)
def offline_font() -> None:
    """Ultralytics looks for Arial.ttf in its config dir and would download it."""
    font = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        import matplotlib

        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)


def rgb_images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for w, h in SIZES]


def as_tensors(images: list[np.ndarray]) -> list[torch.Tensor]:
    return [torch.from_numpy(i).permute(2, 0, 1).float() / 255 for i in images]


def sorted_rows(detections: np.ndarray) -> np.ndarray:
    """Detections (score, label, box) in one order whatever the order of equal scores."""
    return detections[np.lexsort(np.round(detections, 4).T[::-1])]


def yolo(config: str = "yolov8n.yaml", **overrides) -> YOLO:
    """A random YOLO whose class scores differ between anchors (the initial bias makes them nearly
    equal, and equal scores make NMS's choice depend on rounding)."""
    torch.manual_seed(0)
    model = YOLO(config)
    for branch in model.model.model[-1].cv3:
        torch.nn.init.normal_(branch[-1].weight, std=0.05)
        torch.nn.init.constant_(branch[-1].bias, -3.0)
    model.overrides.update({"imgsz": 96, **overrides})
    model.eval()
    return model


@pytest.mark.parametrize("config", ["yolov8n.yaml", "yolo11n.yaml"])
def test_yolo_object_records_its_detections_and_neck_features(store: LocalStore, config: str) -> None:
    model = yolo(config, conf=0.01, max_det=20)
    tracer = ObjectDetectionTracer(model, "m", "v1", store=store)
    assert type(tracer).__name__ == "UltralyticsYOLOTracer"
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_image) == (0.01, 0.7, 20)
    assert tracer.num_classes == 80 and len(tracer.label_names) == 80

    out = tracer(as_tensors(rgb_images()), GT_LIST, input_ids=["a", "b"], dataset_type="val")
    batch, _ = letterbox(as_tensors(rgb_images()), (96, 96), 32)
    with torch.no_grad():
        expected = model.model(batch)
    torch.testing.assert_close(out[0].detach(), expected[0])  # the DetectionModel's own raw output

    tracer.wait_for_save()
    rows = read_rows(store)
    check_rows(rows, SIZES, (0.01, 0.7, 20))
    assert [len(c) for c in rows["pred_boxes"]] == [20, 20]
    assert list(rows["label_names"][0][:2]) == [model.names[0], model.names[1]]
    assert {len(f) for cell in rows["pred_features"] for f in cell} == {64 + 128 + 256}
    assert [len(c) for c in rows["gt_features"]] == [2, 0]
    assert len(rows["image_features"][0]) == 64 + 128 + 256


def test_boxes_equal_ultralytics_predictor(store: LocalStore) -> None:
    """Letterbox, NMS and the way back to original pixels as Ultralytics' predictor does them: the
    tracer runs the predictor's own (fused) DetectionModel on the same two images."""
    model = yolo()
    images = rgb_images()
    results = model.predict([i[..., ::-1].copy() for i in images], conf=0.01, max_det=20, batch=2, verbose=False)
    fused = model.predictor.model.model
    fused.args = {**fused.args, "imgsz": 96}  # the YOLO object's override, which the predictor used
    tracer = ObjectDetectionTracer(fused, "m", "v1", score_thresh=0.01, max_detections_per_image=20, store=store)
    tracer(as_tensors(images), GT_LIST, dataset_type="val")
    tracer.wait_for_save()
    rows = read_rows(store)
    for cell, scores, labels, result in zip(rows["pred_boxes"], rows["pred_scores"], rows["pred_labels"], results):
        assert len(cell) == len(result.boxes) == 20
        ours = np.column_stack([scores, labels, boxes_of(cell)])
        theirs = np.column_stack([result.boxes.conf.numpy(), result.boxes.cls.numpy(), result.boxes.xyxy.numpy()])
        np.testing.assert_allclose(sorted_rows(ours), sorted_rows(theirs), rtol=1e-5, atol=1e-3)


def test_detection_model_alone_uses_its_args(store: LocalStore) -> None:
    net = yolo().model  # a DetectionModel built from yaml: args conf=None, iou=0.7, max_det=300
    tracer = ObjectDetectionTracer(net, "m", "v1", store=store)
    assert type(tracer).__name__ == "UltralyticsYOLOTracer"
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_image) == (0.05, 0.7, 300)
    tracer(torch.stack(as_tensors([rgb_images()[0]] * 2)), GT_LIST, dataset_type="val")
    tracer.wait_for_save()
    check_rows(read_rows(store), [SIZES[0]] * 2, (0.05, 0.7, 300))


@pytest.mark.parametrize(
    ("height", "width", "same"), [(48, 40, True), (120, 60, True), (70, 200, False), (96, 96, True)]
)
def test_letterbox_matches_ultralytics(height: int, width: int, same: bool) -> None:
    image = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    theirs = LetterBox((96, 96), auto=same, stride=32)(image=image)
    tensors = [torch.from_numpy(image).permute(2, 0, 1)]
    if not same:
        tensors.append(torch.zeros(3, 10, 10, dtype=torch.uint8))
    batch, params = letterbox(tensors, (96, 96), 32)
    assert tuple(batch.shape[-2:]) == theirs.shape[:2]
    np.testing.assert_allclose(batch[0].permute(1, 2, 0).numpy() * 255, theirs, atol=3)  # cv2 vs torch resize
    boxes = torch.tensor([[1.0, 2.0, 30.0, 40.0]])
    there = ops.scale_boxes(tuple(batch.shape[-2:]), params[0].forward(boxes).clone(), (height, width))
    torch.testing.assert_close(there, boxes.clamp(max=torch.tensor([width, height, width, height])), atol=1e-3, rtol=0)
    torch.testing.assert_close(params[0].undo(params[0].forward(boxes)), boxes)


def test_training_mode_is_refused(store: LocalStore) -> None:
    model = yolo()
    tracer = ObjectDetectionTracer(model, "m", "v1", store=store)
    model.model.train()
    with pytest.raises(ConfigurationError, match="training mode"):
        tracer(as_tensors(rgb_images()), GT_LIST)
