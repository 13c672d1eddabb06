"""3-D predictions and ground truth: both reference formats, 9-value boxes, errors that name the field."""

from __future__ import annotations

import numpy as np
import pytest

from ml_debugger.exceptions import TraceValidationError
from ml_debugger.tasks.detection3d import make_detection3d_batch, predictions_from, targets_from

BOX = [1.0, 2.0, 0.5, 1.8, 4.2, 1.5, 0.3]


def test_both_formats_agree_and_keep_velocities_and_counts() -> None:
    as_list = targets_from([{"boxes_3d": [BOX], "labels_3d": [2], "velocities": [[1.0, np.nan]], "num_points": [7]}], 1)
    as_dict = targets_from({"boxes_3d": [[BOX]], "labels_3d": [[2]], "velocities": [[[1.0, np.nan]]], "num_points": [[7]]}, 1)
    for frame in (as_list[0], as_dict[0]):
        np.testing.assert_array_equal(frame.boxes, np.array([BOX], np.float32))
        assert frame.labels.tolist() == [2] and frame.num_points.tolist() == [7]
        assert frame.velocities[0, 0] == 1.0 and np.isnan(frame.velocities[0, 1])


def test_nine_value_boxes_carry_velocities() -> None:
    [frame] = predictions_from([{"boxes_3d": [BOX + [0.5, -0.25]], "scores_3d": [0.9], "labels_3d": [0]}])
    assert frame.boxes.shape == (1, 7) and frame.velocities.tolist() == [[0.5, -0.25]]


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([{"boxes_3d": [[1, 2, 3]], "labels_3d": [0]}], r"targets\[0\]\['boxes_3d'\] must have shape \(n, 7\)"),
        ([{"boxes_3d": [BOX[:3] + [-1, 1, 1, 0]], "labels_3d": [0]}], r"negative size"),
        ([{"boxes_3d": [BOX[:6] + [np.nan]], "labels_3d": [0]}], r"NaN or infinite"),
        ([{"boxes_3d": [BOX], "labels_3d": [0], "velocities": [[1.0]]}], r"targets\[0\]\['velocities'\] must have shape \(1, 2\)"),
        ([{"boxes_3d": [BOX], "labels_3d": [0], "velocities": [[np.inf, 0]]}], r"infinite values; use NaN"),
        ([{"boxes_3d": [BOX]}], r"targets\[0\] has no 'labels_3d'"),
        ({"boxes_3d": [[BOX], [BOX]], "labels_3d": [[0], [0]]}, r"per-frame lists of lengths"),
    ],
)
def test_bad_ground_truth_names_the_field(targets, message: str) -> None:
    with pytest.raises(TraceValidationError, match=message):
        targets_from(targets, 1)


def test_labels_beyond_the_models_classes_are_refused() -> None:
    preds = predictions_from([{"boxes_3d": [BOX], "scores_3d": [0.5], "labels_3d": [3]}])
    targets = targets_from([{"boxes_3d": [BOX], "labels_3d": [1]}], 1)
    with pytest.raises(TraceValidationError, match=r"predictions\[0\]\['labels_3d'\] has class 3; the model has 3 classes"):
        make_detection3d_batch(preds, targets, input_hashes=["h"], n_classes=3)
    with pytest.raises(TraceValidationError, match="pc_range must be"):
        make_detection3d_batch(preds, targets, input_hashes=["h"], pc_range=[0, 0, 0, 0, 1, 1])
