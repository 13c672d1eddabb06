"""torchvision detectors (Faster / Mask / Keypoint R-CNN, RetinaNet, FCOS, SSD, SSDlite) and any
module whose eval output is torchvision's list of ``{"boxes", "scores", "labels"}`` dicts.

The model runs unchanged and applies its own thresholds; boxes come back in pixels of the input
images. Features come from the same forward pass: hooks keep the transform's output (the resized
batch) and the backbone's feature maps, and the tracer maps boxes into the resized images.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks.detection2d import ImageTargets, Thresholds
from ml_debugger.training.detection._arrays import ImageBatch, to_numpy
from ml_debugger.training.detection._base import Adapted
from ml_debugger.training.detection._features import (
    OutputCapture,
    half_numpy,
    pooled,
    sample_at_centres,
)
from ml_debugger.training.detection._mapping import (
    MAPPING_HELP,
    describe,
    supported_families,
)
from ml_debugger.training.detection._thresholds import ThresholdPolicy
from ml_debugger.training.detection._torch_base import (
    TorchDetectionTracer,
    require_eval,
)


def read_torchvision_output(output: Any, batch: int) -> list[dict[str, np.ndarray]]:
    """Numpy copies of a list of per-image ``{"boxes", "scores", "labels"}`` dicts."""
    if (
        not isinstance(output, (list, tuple)) or len(output) != batch
        or not all(isinstance(o, Mapping) and {"boxes", "scores", "labels"} <= set(o) for o in output)
    ):
        found = describe(output)
        if isinstance(output, (list, tuple)) and output:
            found += f", the first {describe(output[0])}"
        raise ConfigurationError(
            f"the model's output is {found}, not torchvision's format (a list of {batch} per-image dicts with "
            f"'boxes', 'scores', 'labels'). Supported families: {supported_families()}. Otherwise {MAPPING_HELP}"
        )
    return [{key: to_numpy(o[key]) for key in ("boxes", "scores", "labels")} for o in output]


def attribute_thresholds(owner: Any) -> Thresholds:
    """``score_thresh``, ``nms_thresh``, ``detections_per_img`` of ``owner`` where they are numbers."""

    def number(name: str) -> Any:
        value = getattr(owner, name, None)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    max_det = number("detections_per_img")
    return Thresholds(number("score_thresh"), number("nms_thresh"), None if max_det is None else int(max_det))


class TorchvisionStyleTracer(TorchDetectionTracer):
    """Any ``torch.nn.Module`` whose eval output is torchvision's per-image dicts; thresholds are
    read from ``score_thresh`` / ``nms_thresh`` / ``detections_per_img`` attributes when it has them.
    No features (the architecture is unknown)."""

    family = "torchvision-format module"
    policy = ThresholdPolicy(model_applies=True, hint="the model's own thresholds")

    def _model_thresholds(self) -> Thresholds:
        return attribute_thresholds(self.model)

    def _run(self, inputs: Any) -> tuple[Any, Any]:
        return self._forward(inputs), None

    def _adapt(self, output: Any, state: Any, images: ImageBatch, targets: list[ImageTargets]) -> Adapted:
        return Adapted(read_torchvision_output(output, len(images)))


class TorchvisionTracer(TorchvisionStyleTracer):
    """A torchvision detector: output as the model returns it, features from the same pass."""

    policy = ThresholdPolicy(
        model_applies=True, hint="model.score_thresh / model.nms_thresh / model.detections_per_img"
    )
    per_object: ClassVar[bool] = True

    def __init__(self, model: nn.Module, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)
        self._capture = (
            OutputCapture({"transform": model.transform, "backbone": model.backbone}) if self.record_features else None
        )

    def _model_num_classes(self) -> int | None:
        head = getattr(getattr(self.model, "head", None), "classification_head", None)
        value = getattr(head, "num_classes", getattr(head, "num_columns", None))
        return value if isinstance(value, int) else None

    @contextmanager
    def _armed(self) -> Iterator[dict[str, Any]]:
        if self._capture is None:
            yield {}
            return
        with self._capture.armed() as captured:
            yield captured

    def _run(self, inputs: Any) -> tuple[Any, Any]:
        require_eval(self.model, self.family)
        with self._armed() as captured:
            output = self._forward(inputs)
        return output, captured

    def _adapt(self, output: Any, state: Any, images: ImageBatch, targets: list[ImageTargets]) -> Adapted:
        predictions = read_torchvision_output(output, len(images))
        if state is None or "backbone" not in state:
            return Adapted(predictions)
        features = state["backbone"]
        if isinstance(features, torch.Tensor):  # as GeneralizedRCNN wraps a single-map backbone
            features = OrderedDict([("0", features)])
        image_list = state["transform"][0]
        with torch.no_grad():
            adapted = Adapted(predictions, image_features=half_numpy(pooled(list(features.values()))))
            if self.per_object:
                device = next(iter(features.values())).device
                scales = resize_scales(image_list.image_sizes, images.sizes, device)
                pred_boxes = [o["boxes"].detach().float() * s for o, s in zip(output, scales)]
                gt_boxes = [torch.as_tensor(t.boxes, device=device) * s for t, s in zip(targets, scales)]
                pred_features, adapted.gt_features = self._object_features(
                    state, output, features, image_list, pred_boxes, gt_boxes
                )
                for p, f in zip(predictions, pred_features):
                    p["features"] = f
        return adapted

    def _object_features(
        self, state: Mapping[str, Any], output: Any, features: Mapping[str, torch.Tensor], image_list: Any,
        pred_boxes: list[torch.Tensor], gt_boxes: list[torch.Tensor],
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per image, the features of the detections and of the ground truth (boxes in pixels of
        the resized images): the FPN sampled at each box centre, at the level of its size."""
        maps = list(features.values())
        size = tuple(image_list.tensors.shape[-2:])

        def sample(boxes: list[torch.Tensor]) -> list[np.ndarray]:
            return [half_numpy(sample_at_centres(maps, i, b, size, by_level=True)) for i, b in enumerate(boxes)]

        return sample(pred_boxes), sample(gt_boxes)


def resize_scales(
    resized: Sequence[tuple[int, int]], original: np.ndarray, device: torch.device
) -> list[torch.Tensor]:
    """Per image, the factors from input pixels to the transform's resized image (xyxy order)."""
    return [
        torch.tensor([rw / w, rh / h, rw / w, rh / h], dtype=torch.float32, device=device)
        for (rh, rw), (w, h) in zip(resized, original)
    ]


class RetinaNetTracer(TorchvisionTracer):
    """torchvision ``RetinaNet``. Per-object features: the FPN level assigned by box size, sampled
    at the box centre."""

    family = "torchvision RetinaNet"


class FCOSTracer(TorchvisionTracer):
    """torchvision ``FCOS``. Per-object features: the FPN level assigned by box size, sampled at the
    box centre."""

    family = "torchvision FCOS"


class SSDTracer(TorchvisionTracer):
    """torchvision ``SSD`` / SSDlite. Its feature maps differ in channels and resolution, so only the
    pooled image feature is recorded."""

    family = "torchvision SSD"
    per_object = False


def torchvision_tracer_class(model: nn.Module) -> type[TorchvisionTracer] | None:
    """The tracer of a torchvision detector, or None."""
    from torchvision.models.detection.fcos import FCOS
    from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
    from torchvision.models.detection.retinanet import RetinaNet
    from torchvision.models.detection.ssd import SSD

    from ml_debugger.training.detection._rcnn import (
        FasterRCNNTracer,  # it builds on this module
    )

    for base, tracer in ((GeneralizedRCNN, FasterRCNNTracer), (RetinaNet, RetinaNetTracer), (FCOS, FCOSTracer),
                         (SSD, SSDTracer)):
        if isinstance(model, base):
            return tracer
    return None
