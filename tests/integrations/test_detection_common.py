"""The framework-free detection parts of the callbacks: the task of a model, and ground truth in
Hugging Face's and KerasHub's conventions turned into xyxy pixels."""

from __future__ import annotations

import numpy as np
import pytest

from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.integrations._detection import (
    check_task,
    hf_detection_targets,
    padded_targets,
    slice_targets,
    task_of,
)


def test_hf_labels_give_back_the_annotated_boxes_in_original_pixels() -> None:
    """COCO xywh annotations of a 40 x 60 image, through DETR's image processor (resized to
    80 x 120, boxes normalised cxcywh), come back as the original xyxy pixels and size."""
    transformers = pytest.importorskip("transformers")
    processor = transformers.DetrImageProcessor(size={"height": 80, "width": 120}, do_pad=False)
    image = np.random.default_rng(0).uniform(size=(40, 60, 3)).astype(np.float32)
    xywh = [[5.0, 4.0, 20.0, 10.0], [30.0, 20.0, 25.0, 18.0]]
    annotations = {"image_id": 7, "annotations": [
        {"bbox": b, "category_id": c, "area": b[2] * b[3], "iscrowd": 0} for b, c in zip(xywh, (2, 0))
    ]}
    labels = processor(images=image, annotations=annotations, input_data_format="channels_last", do_rescale=False,
                       return_tensors="pt")["labels"]
    assert labels[0]["size"].tolist() == [80, 120] and labels[0]["orig_size"].tolist() == [40, 60]

    targets, sizes = hf_detection_targets(labels)
    assert sizes.tolist() == [[60, 40]]
    np.testing.assert_allclose(targets[0]["boxes"], [[5, 4, 25, 14], [30, 20, 55, 38]], atol=1e-4)
    assert targets[0]["labels"].tolist() == [2, 0]


def test_hf_labels_without_a_size_or_boxes_are_named() -> None:
    with pytest.raises(TraceValidationError, match=r"labels\[0\] has no 'orig_size' or 'size'"):
        hf_detection_targets([{"boxes": np.zeros((0, 4)), "class_labels": np.zeros(0)}])
    with pytest.raises(TraceValidationError, match=r"labels\[0\] must have 'boxes' and 'class_labels'"):
        hf_detection_targets([{"boxes": np.zeros((0, 4))}])
    with pytest.raises(TraceValidationError, match="labels must be a list of per-image dicts"):
        hf_detection_targets({"boxes": np.zeros((0, 4))})


def test_padded_targets_drop_the_pads_and_convert_the_format() -> None:
    padded = {
        "boxes": np.array([[[2, 3, 10, 5], [-1, -1, -1, -1]], [[-1, -1, -1, -1]] * 2], np.float32),
        "labels": np.array([[1, -1], [-1, -1]]),
    }
    out = padded_targets(padded, "xywh", np.array([[32, 32], [32, 32]]))
    np.testing.assert_allclose(out[0]["boxes"], [[2, 3, 12, 8]])
    assert out[0]["labels"].tolist() == [1] and out[1]["boxes"].shape == (0, 4)
    assert slice_targets(padded, slice(1, 2))["labels"].tolist() == [[-1, -1]]
    with pytest.raises(TraceValidationError, match=r"padded targets need boxes \(batch, max_boxes, 4\)"):
        padded_targets({"boxes": np.zeros((2, 4)), "labels": np.zeros(2)}, "xyxy", np.ones((2, 2)))


def test_the_task_is_given_or_found_from_the_model() -> None:
    assert check_task(None) is None and check_task("detection2d") == "detection2d"
    with pytest.raises(ConfigurationError, match="task must be None"):
        check_task("segmentation")
    assert task_of(object(), None) == "classification"
    assert task_of(object(), "detection2d") == "detection2d"


def test_the_images_a_detector_was_called_with() -> None:
    pytest.importorskip("torch")
    from ml_debugger.integrations._detection_torch import DetectorForward

    assert DetectorForward(("imgs", "targets"), {}, None).images() == "imgs"
    assert DetectorForward((), {"images": "imgs", "targets": "t"}, None).images() == "imgs"
    hf = DetectorForward((), {"pixel_values": "p", "pixel_mask": "m", "labels": "l"}, None)
    assert hf.images(exclude=("labels",)) == {"pixel_values": "p", "pixel_mask": "m"}
