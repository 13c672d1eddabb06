"""Predictions and ground truth of a detection batch: both reference formats, errors that name the field."""

from __future__ import annotations

import numpy as np
import pytest

from ml_debugger.exceptions import TraceValidationError
from ml_debugger.tasks.detection2d import make_detection_batch, predictions_from, targets_from

BOXES = [[[0, 0, 10, 10], [2, 3, 8, 9]], []]
LABELS = [[1, 0], []]


def test_both_ground_truth_formats_give_the_same_targets() -> None:
    as_list = targets_from([{"boxes": b, "labels": l} for b, l in zip(BOXES, LABELS)], 2)
    as_dict = targets_from({"boxes": BOXES, "labels": LABELS}, 2)
    for a, b in zip(as_list, as_dict):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.labels, b.labels)
    assert as_list[0].boxes.dtype == np.float32 and as_list[0].labels.dtype == np.int64
    np.testing.assert_allclose(as_list[0].area, [100, 36])
    assert not as_list[0].iscrowd.any()
    assert as_list[1].boxes.shape == (0, 4) and as_list[1].labels.shape == (0,)


def test_coco_iscrowd_and_area_are_kept() -> None:
    [target] = targets_from([{"boxes": [[0, 0, 4, 4]], "labels": [3], "iscrowd": [1], "area": [9.5]}], 1)
    assert target.iscrowd.tolist() == [True] and target.area.tolist() == [9.5]


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([{"boxes": [[0, 0, 1]], "labels": [0]}], r"targets\[0\]\['boxes'\] must have shape \(n, 4\)"),
        ([{"boxes": [[5, 0, 1, 1]], "labels": [0]}], r"targets\[0\]\['boxes'\] has 1 boxes with x2 < x1"),
        ([{"boxes": [[0, 0, np.nan, 1]], "labels": [0]}], r"targets\[0\]\['boxes'\] has NaN"),
        ([{"boxes": [[0, 0, 1, 1]], "labels": [-2]}], r"targets\[0\]\['labels'\] must be class ids >= 0"),
        ([{"boxes": [[0, 0, 1, 1]], "labels": [0, 1]}], r"targets\[0\]\['labels'\] must have shape \(1,\)"),
        ([{"boxes": [[0, 0, 1, 1]], "labels": [0.5]}], r"targets\[0\]\['labels'\] must be integer class ids"),
        ([{"boxes": [[0, 0, 1, 1]]}], r"targets\[0\] has no 'labels'"),
        ({"boxes": [[[0, 0, 1, 1]]]}, r"targets as a dict of per-image lists needs 'labels'"),
        ({"boxes": [[], []], "labels": [[], []]}, r"targets has per-image lists of lengths .* the batch has 1 images"),
        ("boxes", r"targets must be a list of per-image dicts"),
        ([{"boxes": [[0, 0, 1, 1]], "labels": [0], "area": [-1.0]}], r"targets\[0\]\['area'\] has negative areas"),
    ],
)
def test_bad_ground_truth_names_the_field(targets, message: str) -> None:
    with pytest.raises(TraceValidationError, match=message):
        targets_from(targets, 1)


@pytest.mark.parametrize(
    ("predictions", "message"),
    [
        ([{"boxes": [[0, 0, 1, 1]], "scores": [np.inf], "labels": [0]}], r"predictions\[0\]\['scores'\] has NaN or infinite"),
        ([{"boxes": [[0, 0, 1, 1]], "scores": [0.5], "labels": [0], "features": np.zeros((2, 3))}],
         r"predictions\[0\]\['features'\] must have one feature vector per box \(1\)"),
        ([{"boxes": [[0, 0, 1, 1]], "labels": [0]}], r"predictions\[0\] has no 'scores'"),
    ],
)
def test_bad_predictions_name_the_field(predictions, message: str) -> None:
    with pytest.raises(TraceValidationError, match=message):
        predictions_from(predictions)


def test_batch_parts_must_agree() -> None:
    preds = predictions_from([{"boxes": [[0, 0, 1, 1]], "scores": [0.5], "labels": [0]}])
    targets = targets_from([{"boxes": [], "labels": []}], 1)
    with pytest.raises(TraceValidationError, match="input_ids has 2 entries"):
        make_detection_batch(preds, targets, input_hashes=["h"], input_ids=[1, 2], image_sizes=[[4, 4]])
    with pytest.raises(TraceValidationError, match="image_sizes must be"):
        make_detection_batch(preds, targets, input_hashes=["h"], image_sizes=[[0, 4]])
    with pytest.raises(TraceValidationError, match="targets has 2 images but the predictions have 1"):
        make_detection_batch(preds, targets * 2, input_hashes=["h"], image_sizes=[[4, 4]])
    mixed = preds + predictions_from([{"boxes": [[0, 0, 1, 1]], "scores": [0.5], "labels": [0], "features": [[1.0]]}])
    with pytest.raises(TraceValidationError, match="features for some images but not others"):
        make_detection_batch(mixed, targets * 2, input_hashes=["h", "i"], image_sizes=[[4, 4]] * 2)
