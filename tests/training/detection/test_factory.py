"""The factory's recognition and errors, predictions recorded without a model, ground truth in
every accepted form, the threshold rules and the framework-free helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.store import LocalStore
from ml_debugger.tasks.detection2d import Thresholds
from ml_debugger.training import ObjectDetectionTracer
from ml_debugger.training.detection._arrays import nms, post_filter, to_xyxy
from ml_debugger.training.detection._features import sample_at_centres
from ml_debugger.training.detection._thresholds import ThresholdPolicy, resolve
from tests.training.detection.conftest import GT_LIST, boxes_of, read_rows

PREDICTIONS = [
    {"boxes": torch.tensor([[1.0, 2.0, 10.0, 12.0], [5.0, 5.0, 8.0, 9.0]]), "scores": torch.tensor([0.9, 0.3]),
     "labels": torch.tensor([1, 2])},
    {"boxes": np.zeros((0, 4)), "scores": [], "labels": []},
]


def test_predictions_made_elsewhere(store: LocalStore) -> None:
    tracer = ObjectDetectionTracer(None, "m", "v1", score_thresh=0.25, store=store)
    assert type(tracer).__name__ == "PredictionsTracer"
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_image) == (0.25, None, None)
    sizes = [[96, 64], [64, 80]]
    tracer.record(PREDICTIONS, GT_LIST, input_ids=[7, 8], dataset_type="val", n_epoch=2, image_sizes=sizes)
    tracer.wait_for_save()
    rows = read_rows(store)
    assert rows["input_id"].tolist() == ["7", "8"] and set(rows["epoch"]) == {2}
    assert rows[["image_width", "image_height"]].to_numpy().tolist() == [[96, 64], [64, 80]]
    np.testing.assert_allclose(boxes_of(rows["pred_boxes"][0]), PREDICTIONS[0]["boxes"].numpy())
    assert rows["pred_scores"][0].tolist() == pytest.approx([0.9, 0.3]) and len(rows["pred_boxes"][1]) == 0
    assert rows["score_thresh"].tolist() == [0.25, 0.25] and rows["iou_thresh"].isna().all()
    assert rows["input_hash"][0] != rows["input_hash"][1]
    with pytest.raises(ConfigurationError, match=r"has no model.*tracer.record"):
        tracer(torch.zeros(1, 3, 8, 8), GT_LIST[:1])


def test_record_without_sizes_takes_the_boxes_extent(store: LocalStore) -> None:
    tracer = ObjectDetectionTracer(None, "m", "v1", store=store)
    with pytest.warns(UserWarning, match="extent of its boxes"):
        tracer.record(PREDICTIONS, GT_LIST, input_hashes=["h1", "h2"])
    tracer.wait_for_save()
    rows = read_rows(store)
    assert rows[["image_width", "image_height"]].to_numpy().tolist() == [[60, 40], [1, 1]]
    assert rows["input_id"].tolist() == ["h1", "h2"]
    with pytest.raises(TraceValidationError, match="needs input_ids or input_hashes"):
        tracer.record(PREDICTIONS, GT_LIST)


def test_ground_truth_in_every_form_records_the_same(store: LocalStore) -> None:
    forms = {
        "list_of_tensors": [{"boxes": torch.tensor(t["boxes"], dtype=torch.float32).reshape(-1, 4),
                             "labels": torch.tensor(t["labels"], dtype=torch.int64)} for t in GT_LIST],
        "dict_of_arrays": {"boxes": [np.asarray(t["boxes"]) for t in GT_LIST],
                           "labels": [np.asarray(t["labels"]) for t in GT_LIST]},
        "lists": [{"boxes": np.asarray(t["boxes"]).tolist(), "labels": list(t["labels"])} for t in GT_LIST],
    }
    tracer = ObjectDetectionTracer(None, "m", "v1", store=store)
    for name, targets in forms.items():
        tracer.record(PREDICTIONS, targets, input_ids=[1, 2], dataset_type=name, image_sizes=[[96, 64], [64, 80]])
    tracer.wait_for_save()
    rows = read_rows(store)
    for name in forms:
        part = rows[rows["dataset_type"] == name]
        assert [boxes_of(b).tolist() for b in part["gt_boxes"]] == [np.asarray(t["boxes"]).reshape(-1, 4).tolist()
                                                                    for t in GT_LIST]
        assert [list(label) for label in part["gt_labels"]] == [[1, 2], []]


@pytest.mark.parametrize(
    ("targets", "ids", "message"),
    [
        ([{"boxes": [[0, 0, 1]], "labels": [0]}, GT_LIST[1]], [1, 2],
         r"targets\[0\]\['boxes'\] must have shape \(n, 4\)"),
        ([{"boxes": [[5, 0, 1, 1]], "labels": [0]}, GT_LIST[1]], [1, 2],
         r"targets\[0\]\['boxes'\] has 1 boxes with x2 < x1"),
        ([GT_LIST[0], {"boxes": [[0, 0, np.nan, 1]], "labels": [0]}], [1, 2], r"targets\[1\]\['boxes'\] has NaN"),
        ([{"boxes": [[0, 0, 1, 1]], "labels": [5]}, GT_LIST[1]], [1, 2],
         r"targets\[0\]\['labels'\] has class ids \[5\]"),
        (GT_LIST, [1, 2, 3], "input_ids has 3 entries"),
        (GT_LIST[:1], [1, 2], "targets has 1 images; the batch has 2"),
    ],
    ids=["boxes_shape", "x2_lt_x1", "nan", "label_range", "ids_vs_batch", "targets_vs_batch"],
)
def test_bad_ground_truth_names_the_field(store: LocalStore, targets, ids, message: str) -> None:
    class Fixed(nn.Module):
        """Any module with torchvision's output: two images, no detections."""

        def forward(self, images):
            return [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
                    for _ in images]

    tracer = ObjectDetectionTracer(Fixed(), "m", "v1", num_classes=3, store=store)
    with pytest.raises(TraceValidationError, match=message):
        tracer(torch.zeros(2, 3, 16, 16), targets, input_ids=ids)


def test_unrecognised_models_list_the_families_and_the_mapping(store: LocalStore) -> None:
    with pytest.raises(ConfigurationError) as error:
        ObjectDetectionTracer("yolov8n.pt", "m", "v1", store=store)
    message = str(error.value)
    for family in ("builtins.str", "torchvision Faster R-CNN", "Ultralytics YOLOv8", "Deformable DETR", "CenterNet",
                   "KerasCV", "Object Detection API", "output_mapping=", "ObjectDetectionTracer(None"):
        assert family in message


def test_an_unsupported_hugging_face_model_is_refused(store: LocalStore) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8], depths=[1])
    with pytest.raises(ConfigurationError, match=r"does not recognise this Hugging Face model.*ResNetModel"):
        ObjectDetectionTracer(transformers.ResNetModel(config), "m", "v1", store=store)


@pytest.mark.parametrize(("value", "message"), [({"score_thresh": 1.5}, "score_thresh must be a number in"),
                                               ({"max_detections_per_image": 0}, "must be a positive int")])
def test_bad_threshold_arguments(store: LocalStore, value, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ObjectDetectionTracer(None, "m", "v1", store=store, **value)


def test_threshold_rules() -> None:
    applies = ThresholdPolicy(model_applies=True)
    own = Thresholds(0.05, 0.5, 100)
    # nothing asked: the model's values, nothing to filter
    assert resolve(Thresholds(), own, applies) == (own, Thresholds())
    # stricter: used and filtered
    assert resolve(Thresholds(0.3, 0.4, 10), own, applies) == (Thresholds(0.3, 0.4, 10), Thresholds(0.3, 0.4, 10))
    # unknown model values: the fallback, applied to the copy
    assert resolve(Thresholds(), Thresholds(), applies) == (Thresholds(0.05, 0.5, 300), Thresholds(0.05, 0.5, 300))
    # looser: a warning, the model's value
    with pytest.warns(UserWarning, match="max_detections_per_image=500 is looser"):
        assert resolve(Thresholds(None, None, 500), own, applies)[0] == own
    # the tracer decodes: family defaults, then the fallback; nothing filtered afterwards
    decodes = ThresholdPolicy(model_applies=False, uses_nms=False, defaults=Thresholds(max_detections=100))
    assert resolve(Thresholds(0.2), Thresholds(), decodes) == (Thresholds(0.2, None, 100), Thresholds())


def test_post_filter_and_nms() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    prediction = {"boxes": boxes, "scores": np.array([0.9, 0.8, 0.7, 0.1]), "labels": np.array([1, 1, 2, 1]),
                  "features": np.arange(4)[:, None]}
    assert nms(boxes, prediction["scores"], prediction["labels"], 0.5).tolist() == [0, 2, 3]
    kept = post_filter(prediction, Thresholds(0.2, 0.5, 5))
    assert kept["features"][:, 0].tolist() == [0, 2]
    assert post_filter(prediction, Thresholds(None, None, 2))["scores"].tolist() == [0.9, 0.8]
    assert post_filter(prediction, Thresholds()) is prediction


@pytest.mark.parametrize(("box_format", "boxes"), [
    ("xyxy", [2, 4, 6, 10]), ("xywh", [2, 4, 4, 6]), ("center_xywh", [4, 7, 4, 6]), ("yxyx", [4, 2, 10, 6]),
    ("center_yxhw", [7, 4, 6, 4]), ("rel_xyxy", [0.2, 0.2, 0.6, 0.5]), ("rel_yxyx", [0.2, 0.2, 0.5, 0.6]),
])
def test_box_formats(box_format: str, boxes: list[float]) -> None:
    np.testing.assert_allclose(to_xyxy(np.array([boxes]), box_format, 10, 20), [[2, 4, 6, 10]])


def test_features_are_sampled_at_box_centres() -> None:
    """A map whose value is its column index, over a 64-px-wide input at stride 8 and 16."""
    fine = torch.arange(8.0).repeat(1, 1, 8, 1)  # (1, 1, 8, 8): value = column
    coarse = torch.arange(4.0).repeat(1, 1, 4, 1) * 10
    box = torch.tensor([[16.0, 0.0, 28.0, 8.0]])  # centre x = 22 px: column 22 / 8 - 0.5 = 2.25
    both = sample_at_centres([fine, coarse], 0, box, (64, 64), by_level=False)
    assert both.tolist() == [[pytest.approx(2.25), pytest.approx(10 * (22 / 16 - 0.5))]]
    levels = [fine, torch.full((1, 1, 4, 4), 7.0)]  # strides 8 and 16: anchors of 32 and 64 px
    small = sample_at_centres(levels, 0, box, (64, 64), by_level=True)
    big = sample_at_centres(levels, 0, torch.tensor([[0.0, 0.0, 64.0, 64.0]]), (64, 64), by_level=True)
    assert small.tolist() == [[pytest.approx(2.25)]] and big.tolist() == [[7.0]]
