"""Runs keras_detector_shapes.py end to end on CPU (Keras 3, torch backend) and evaluates what it traced."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
pytest.importorskip("keras")
pytest.importorskip("pycocotools")

N_VAL = 32


@pytest.mark.slow
def test_keras_hub_style_detector_traces_every_validation_image_per_epoch(load_script, check_detection_run) -> None:
    script = load_script(Path(__file__).with_name("keras_detector_shapes.py"))
    script.main(epochs=2, n_val=N_VAL)

    rows = check_detection_run("shapes-keras-detector", "keras-v1", N_VAL)
    # the padded KerasHub targets come back as each image's real boxes, in pixels
    _, padded = script.shapes_data(N_VAL, seed=1)
    first = rows[rows["epoch"] == 0].sort_values("input_id", key=lambda c: c.astype(int))
    for cell, boxes, labels in zip(first["gt_boxes"], padded["boxes"], padded["labels"]):
        np.testing.assert_allclose(np.stack(cell), boxes[labels >= 0])
    assert list(rows["label_names"].iloc[0]) == script.CLASSES
    assert rows[["score_thresh", "iou_thresh", "max_detections"]].iloc[0].tolist() == pytest.approx([0.05, 0.5, script.SLOTS])
