"""torchvision detectors (Faster / Mask / Keypoint R-CNN, RetinaNet, FCOS, SSD, SSDlite) and any
module whose eval output is torchvision's list of ``{"boxes", "scores", "labels"}`` dicts.

The model runs unchanged and applies its own thresholds; boxes come back in pixels of the input
images. Features come from the same forward pass: hooks keep the transform's output (the resized
batch) and the backbone's feature maps, and the tracer maps boxes into the resized images.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
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


def _attribute_thresholds(owner: Any) -> Thresholds:
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
        return _attribute_thresholds(self.model)

    def _run(self, inputs: Any) -> tuple[Any, Any]:
        return self._forward(inputs), None

    def _adapt(self, output: Any, state: Any, images: ImageBatch, targets: list[ImageTargets]) -> Adapted:
        return Adapted(read_torchvision_output(output, len(images)))


class _TorchvisionTracer(TorchvisionStyleTracer):
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

    def _run(self, inputs: Any) -> tuple[Any, Any]:
        require_eval(self.model, self.family)
        if self._capture is None:
            return self._forward(inputs), None
        with self._capture.armed() as captured:
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
                scales = _resize_scales(image_list.image_sizes, images.sizes, device)
                pred_boxes = [o["boxes"].detach().float() * s for o, s in zip(output, scales)]
                gt_boxes = [torch.as_tensor(t.boxes, device=device) * s for t, s in zip(targets, scales)]
                features_of = self._object_features(features, image_list, pred_boxes + gt_boxes)
                for p, f in zip(predictions, features_of[: len(images)]):
                    p["features"] = f
                adapted.gt_features = features_of[len(images):]
        return adapted

    def _object_features(
        self, features: Mapping[str, torch.Tensor], image_list: Any, boxes: list[torch.Tensor]
    ) -> list[np.ndarray]:
        """Per-object features of ``boxes``: the batch's predictions, then its ground truth, per image,
        in pixels of the resized images."""
        batch = len(image_list.image_sizes)
        maps = list(features.values())
        input_size = tuple(image_list.tensors.shape[-2:])
        return [
            half_numpy(sample_at_centres(maps, i % batch, b, input_size, by_level=True)) for i, b in enumerate(boxes)
        ]


def _resize_scales(
    resized: Sequence[tuple[int, int]], original: np.ndarray, device: torch.device
) -> list[torch.Tensor]:
    """Per image, the factors from input pixels to the transform's resized image (xyxy order)."""
    return [
        torch.tensor([rw / w, rh / h, rw / w, rh / h], dtype=torch.float32, device=device)
        for (rh, rw), (w, h) in zip(resized, original)
    ]


class FasterRCNNTracer(_TorchvisionTracer):
    """torchvision ``GeneralizedRCNN`` (Faster, Mask, Keypoint R-CNN; boxes only). Per-object
    features: the box head's representation (``roi_heads.box_roi_pool`` + ``box_head``) of each kept
    detection and ground-truth box, computed on the backbone features of the same forward pass."""

    family = "torchvision Faster R-CNN"
    policy = ThresholdPolicy(
        model_applies=True,
        hint="model.roi_heads.score_thresh / model.roi_heads.nms_thresh / model.roi_heads.detections_per_img",
    )

    def _model_thresholds(self) -> Thresholds:
        return _attribute_thresholds(self.model.roi_heads)

    def _model_num_classes(self) -> int | None:
        cls_score = getattr(getattr(self.model.roi_heads, "box_predictor", None), "cls_score", None)
        return getattr(cls_score, "out_features", None)

    def _object_features(
        self, features: Mapping[str, torch.Tensor], image_list: Any, boxes: list[torch.Tensor]
    ) -> list[np.ndarray]:
        batch = len(image_list.image_sizes)
        heads = self.model.roi_heads
        dtype = next(iter(features.values())).dtype
        out = []
        for part in (boxes[:batch], boxes[batch:]):
            rois = heads.box_roi_pool(features, [b.to(dtype) for b in part], image_list.image_sizes)
            out.extend(half_numpy(r) for r in heads.box_head(rois).split([len(b) for b in part]))
        return out


class RetinaNetTracer(_TorchvisionTracer):
    """torchvision ``RetinaNet``. Per-object features: the FPN level assigned by box size, sampled
    at the box centre."""

    family = "torchvision RetinaNet"


class FCOSTracer(_TorchvisionTracer):
    """torchvision ``FCOS``. Per-object features: the FPN level assigned by box size, sampled at the
    box centre."""

    family = "torchvision FCOS"


class SSDTracer(_TorchvisionTracer):
    """torchvision ``SSD`` / SSDlite. Its feature maps differ in channels and resolution, so only the
    pooled image feature is recorded."""

    family = "torchvision SSD"
    per_object = False


def torchvision_tracer_class(model: nn.Module) -> type[_TorchvisionTracer] | None:
    """The tracer of a torchvision detector, or None."""
    from torchvision.models.detection.fcos import FCOS
    from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
    from torchvision.models.detection.retinanet import RetinaNet
    from torchvision.models.detection.ssd import SSD

    for base, tracer in ((GeneralizedRCNN, FasterRCNNTracer), (RetinaNet, RetinaNetTracer), (FCOS, FCOSTracer),
                         (SSD, SSDTracer)):
        if isinstance(model, base):
            return tracer
    return None
