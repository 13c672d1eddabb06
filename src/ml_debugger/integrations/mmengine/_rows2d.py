"""MMDetection validation batches as 2-D detection rows.

MMDetection's ``predict`` (``rescale=True`` in ``val_step`` / ``test_step``) returns
``pred_instances.bboxes`` in pixels of the original image. The ground truth is the dataset's own
annotations of the sample (``get_data_info(index)['instances']``: xyxy in the original image,
``ignore_flag`` marking crowd regions), as COCO's evaluation reads them; when the dataset index is
unknown (a sampler of another kind) it is the data sample's ``gt_instances`` (plus
``ignored_instances`` as crowd), which MMDetection's test pipelines load after resizing, i.e. in
the original image. Image sizes are the metainfo's ``ori_shape``; each image is hashed as the
pipeline fed it to the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
from torch import nn

from ml_debugger.core import TraceSession
from ml_debugger.core.previews import encode_previews
from ml_debugger.exceptions import TraceValidationError
from ml_debugger.integrations.mmengine._batches import sample_ids
from ml_debugger.store import TraceStore
from ml_debugger.tasks.detection2d import (
    DetectionBatch,
    Thresholds,
    make_detection_batch,
    predictions_from,
    targets_from,
)
from ml_debugger.training.detection._arrays import clip_boxes, image_batch, to_numpy

class Rows2D:
    """Builds ``detection2d`` rows from a validation step's data batch and output data samples."""

    task = "detection2d"

    def __init__(
        self,
        model: nn.Module,
        model_name: str,
        version_name: str,
        *,
        label_names: Sequence[str] | None,
        store: TraceStore | None,
        strict: bool,
        rank: int,
        previews: bool = False,
    ) -> None:
        self.thresholds = model_thresholds(model)
        self.previews = previews
        self.label_names = None if label_names is None else tuple(str(n) for n in label_names)
        self.session = TraceSession(model_name, version_name, "detection2d", store=store, rank=rank, strict=strict)

    def watch(self) -> AbstractContextManager[None]:
        return nullcontext()

    def batch(
        self, data_batch: dict[str, Any], outputs: Sequence[Any], indices: np.ndarray | None, dataset: Any = None
    ) -> DetectionBatch:
        """The rows of the images of ``data_batch`` (already without sampler padding); ``indices``
        are their indices in ``dataset`` when known."""
        images = [to_numpy(image) for image in data_batch["inputs"]]
        hashes = image_batch(images, channels_last=False).hashes
        sizes = np.asarray([original_size(sample, i) for i, sample in enumerate(outputs)], dtype=np.int64)
        predictions = []
        for sample, (width, height) in zip(outputs, sizes):
            pred = sample.pred_instances
            predictions.append({
                "boxes": clip_boxes(_boxes(pred.bboxes), float(width), float(height)),
                "scores": to_numpy(pred.scores),
                "labels": to_numpy(pred.labels),
            })
        if indices is not None and callable(getattr(dataset, "get_data_info", None)):
            truth = [annotations(dataset.get_data_info(int(index)), int(index)) for index in indices]
        else:
            truth = [ground_truth(sample, i) for i, sample in enumerate(outputs)]
        return make_detection_batch(
            predictions_from(predictions), targets_from(truth, len(outputs)), input_hashes=hashes,
            image_sizes=sizes, input_ids=sample_ids(outputs, self.task, indices), thresholds=self.thresholds,
            label_names=self.label_names,
            previews=encode_previews([bgr_to_rgb(image) for image in images]) if self.previews else None,
        )

    def close(self) -> None:
        self.session.close()


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    """A ``(C, H, W)`` image as loaded by MMCV (BGR for colour images) with RGB channels."""
    return image[::-1] if image.ndim == 3 and image.shape[0] == 3 else image


def _boxes(value: Any) -> np.ndarray:
    """``(n, 4)`` float64 xyxy of a tensor or an MMDetection box structure (``HorizontalBoxes``)."""
    return to_numpy(getattr(value, "tensor", value)).astype(np.float64).reshape(-1, 4)


def original_size(sample: Any, index: int) -> tuple[int, int]:
    """``(width, height)`` of the original image from the metainfo's ``ori_shape`` ``(h, w)``."""
    shape = sample.metainfo.get("ori_shape")
    if shape is None or len(shape) < 2:
        raise TraceValidationError(
            f"data sample {index} has no ori_shape (height, width) in its metainfo; keep 'ori_shape' in the "
            "meta_keys of PackDetInputs"
        )
    return int(shape[1]), int(shape[0])


def annotations(info: Any, index: int) -> dict[str, np.ndarray]:
    """``boxes``, ``labels`` and ``iscrowd`` of a dataset's ``instances`` (MMDetection's data info:
    ``bbox`` xyxy, ``bbox_label``, ``ignore_flag``)."""
    instances = info.get("instances") if isinstance(info, Mapping) else None
    if instances is None:
        raise TraceValidationError(
            f"the dataset's get_data_info({index}) has no 'instances'; expected MMDetection's data info with "
            "instances of bbox (xyxy), bbox_label and ignore_flag"
        )
    return {
        "boxes": np.asarray([i["bbox"] for i in instances], dtype=np.float32).reshape(-1, 4),
        "labels": np.asarray([i["bbox_label"] for i in instances], dtype=np.int64),
        "iscrowd": np.asarray([bool(i.get("ignore_flag", 0)) for i in instances], dtype=bool),
    }


def ground_truth(sample: Any, index: int) -> dict[str, np.ndarray]:
    """``boxes``, ``labels`` and ``iscrowd`` of a data sample's ``gt_instances`` (and
    ``ignored_instances``, as crowd regions)."""
    parts = []
    for key, crowd in (("gt_instances", False), ("ignored_instances", True)):
        instances = getattr(sample, key, None)
        if instances is None or "bboxes" not in instances:
            if key == "gt_instances":
                raise TraceValidationError(
                    f"data sample {index} has no gt_instances.bboxes: keep LoadAnnotations(with_bbox=True) in the "
                    "validation pipeline so the ground truth reaches the model's data samples"
                )
            continue
        boxes = _boxes(instances.bboxes)
        parts.append((boxes, to_numpy(instances.labels).reshape(-1), np.full(len(boxes), crowd)))
    return {
        "boxes": np.concatenate([p[0] for p in parts]).astype(np.float32),
        "labels": np.concatenate([p[1] for p in parts]),
        "iscrowd": np.concatenate([p[2] for p in parts]),
    }


def model_thresholds(model: nn.Module) -> Thresholds:
    """Score threshold, NMS IoU and detections per image of the model's ``test_cfg`` (the ``rcnn``
    stage of two-stage detectors); None where it has none (e.g. DETR has no NMS)."""
    config = getattr(model, "test_cfg", None)
    if isinstance(config, Mapping) and isinstance(config.get("rcnn"), Mapping):
        config = config["rcnn"]
    if not isinstance(config, Mapping):
        return Thresholds()
    nms = config.get("nms")
    iou = nms.get("iou_threshold", nms.get("iou_thr")) if isinstance(nms, Mapping) else None
    score = config.get("score_thr")
    most = config.get("max_per_img")
    return Thresholds(
        None if score is None else float(score),
        None if iou is None else float(iou),
        None if most is None else int(most),
    )
