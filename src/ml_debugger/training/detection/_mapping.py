"""Reading detections from an output by a mapping (the ``output_mapping`` argument), and the tracer
of models that only such a mapping describes. Framework-free: works for torch, Keras and TF.

``output_mapping`` is either a dict::

    {"boxes": "detection_boxes",      # key, attribute or tuple index of the boxes
     "scores": "detection_scores",
     "labels": "detection_classes",
     "num_detections": "num_detections",   # optional: valid entries per image
     "box_format": "rel_yxyx"}             # optional, default "xyxy" (pixels); "rel_" = normalised

where each field is batched ``(batch, n, ...)`` or a list of per-image arrays, or a callable
``output_mapping(output, inputs)`` returning per-image dicts with ``boxes`` (xyxy pixels),
``scores``, ``labels`` and optionally ``features``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.tasks.detection2d import ImageTargets
from ml_debugger.training.detection._arrays import (
    BOX_FORMATS,
    ImageBatch,
    image_batch,
    to_numpy,
    to_xyxy,
)
from ml_debugger.training.detection._base import Adapted, DetectionTracer
from ml_debugger.training.detection._thresholds import ThresholdPolicy

SUPPORTED = (
    "torchvision Faster R-CNN / Mask R-CNN / Keypoint R-CNN, RetinaNet, FCOS, SSD, SSDlite",
    "Ultralytics YOLOv8 and newer (a YOLO object or its DetectionModel)",
    (
        "DETR, Conditional DETR, Deformable DETR (Hugging Face *ForObjectDetection, or facebookresearch-style "
        "modules with class_embed / bbox_embed / query_embed returning {'pred_logits', 'pred_boxes'})"
    ),
    (
        "Hugging Face RT-DETR (RTDetrForObjectDetection, RTDetrV2ForObjectDetection), D-FINE "
        "(DFineForObjectDetection) and YOLOS (YolosForObjectDetection)"
    ),
    "CenterNet-style modules with 'hm' / 'wh' / 'reg' heads",
    "any torch.nn.Module whose eval output is a list of per-image dicts with 'boxes', 'scores', 'labels'",
    "KerasCV / KerasHub object detectors (a bounding_box_format and a prediction decoder)",
    "TensorFlow Object Detection API models (detection_boxes / detection_scores / detection_classes)",
)

MAPPING_HELP = (
    "pass output_mapping={'boxes': ..., 'scores': ..., 'labels': ..., 'num_detections': ..., 'box_format': ...} "
    "or a callable output_mapping(output, inputs) -> per-image dicts (see docs/detection-tracing.md); for "
    "predictions made elsewhere use ObjectDetectionTracer(None, ...).record(...)"
)

KEYS = ("boxes", "scores", "labels", "num_detections", "box_format")


def supported_families() -> str:
    return "; ".join(SUPPORTED)


def describe(output: Any) -> str:
    """What an output is, for error messages: its type, and its keys or length."""
    if isinstance(output, Mapping):
        return f"a {type(output).__name__} with keys {sorted(map(str, output))}"
    if isinstance(output, (list, tuple)):
        return f"a {type(output).__name__} of {len(output)} items"
    return f"a {type(output).__name__}"


class OutputMapping:
    """A validated ``output_mapping``: reads per-image detections in xyxy pixels from an output."""

    def __init__(self, spec: Mapping[str, Any] | Callable[[Any, Any], Sequence[Mapping[str, Any]]]) -> None:
        if not callable(spec):
            if not isinstance(spec, Mapping):
                raise ConfigurationError(f"output_mapping must be a dict or a callable; got {type(spec).__name__}")
            unknown = sorted(set(map(str, spec)) - set(KEYS))
            missing = [k for k in ("boxes", "scores", "labels") if k not in spec]
            if unknown or missing:
                raise ConfigurationError(
                    f"output_mapping has unknown keys {unknown} and lacks {missing}; valid keys: {', '.join(KEYS)} "
                    "(boxes, scores and labels are required)"
                )
            box_format = spec.get("box_format", "xyxy")
            if str(box_format).removeprefix("rel_") not in BOX_FORMATS:
                raise ConfigurationError(
                    f"output_mapping box_format {box_format!r} is unknown; expected one of {', '.join(BOX_FORMATS)}, "
                    "optionally with a 'rel_' prefix for boxes normalised to the image"
                )
        self.spec = spec

    def read(self, output: Any, inputs: Any, images: ImageBatch) -> list[dict[str, np.ndarray]]:
        batch = len(images)
        if callable(self.spec):
            raw = self.spec(output, inputs)
            if not isinstance(raw, Sequence) or len(raw) != batch or not all(isinstance(r, Mapping) for r in raw):
                raise TraceValidationError(
                    f"output_mapping(output, inputs) must return {batch} per-image dicts; got {describe(raw)}"
                )
            return [{k: to_numpy(v) for k, v in r.items()} for r in raw]
        fields = {key: self._per_image(output, key, batch) for key in ("boxes", "scores", "labels", "num_detections")
                  if key in self.spec}
        box_format = str(self.spec.get("box_format", "xyxy"))
        out = []
        for i, (width, height) in enumerate(images.sizes):
            count = None
            if "num_detections" in fields:
                count = int(np.asarray(fields["num_detections"][i]).reshape(-1)[0])
            boxes = np.asarray(fields["boxes"][i]).reshape(-1, 4)[:count]
            scores = np.asarray(fields["scores"][i]).reshape(-1)[:count]
            labels = np.asarray(fields["labels"][i]).reshape(-1)[:count]
            out.append({"boxes": to_xyxy(boxes, box_format, width, height), "scores": scores, "labels": labels})
        return out

    def _per_image(self, output: Any, key: str, batch: int) -> list[Any]:
        where = self.spec[key]
        try:
            if isinstance(output, Mapping) or (isinstance(where, int) and isinstance(output, (list, tuple))):
                value = output[where]
            else:
                value = getattr(output, where)
        except (KeyError, IndexError, AttributeError, TypeError) as exc:
            raise ConfigurationError(
                f"output_mapping[{key!r}] = {where!r} is not in the model's output, {describe(output)}. "
                f"Supported families: {supported_families()}. Otherwise {MAPPING_HELP}"
            ) from exc
        if isinstance(value, (list, tuple)):
            items = [to_numpy(v) for v in value]
        else:
            items = list(to_numpy(value))
        if len(items) != batch:
            raise TraceValidationError(f"output field {where!r} has {len(items)} images; the batch has {batch}")
        return items


def read_image_batch(inputs: Any, channels_last: bool) -> ImageBatch:
    """Sizes and hashes of a batch array / tensor or a list of images, in any framework."""
    if isinstance(inputs, (list, tuple)):
        return image_batch([to_numpy(i) for i in inputs], channels_last=channels_last)
    if hasattr(inputs, "shape"):
        return image_batch(to_numpy(inputs), channels_last=channels_last)
    raise TraceValidationError(
        f"inputs must be a batch of images (an array or tensor) or a list of images; got {type(inputs).__name__}"
    )


class MappedOutputTracer(DetectionTracer):
    """Any model (torch, Keras, TensorFlow) whose output ``output_mapping`` describes. The model
    applies its own thresholds, which cannot be read: the values used (the arguments, else
    0.05 / 0.5 / 300) are applied to the recorded copy. No features."""

    family = "model read by output_mapping"
    policy = ThresholdPolicy(model_applies=True, hint="the model's own post-processing")

    def __init__(self, model: Any, *args: Any, output_mapping: Any, channels_last: bool, **kwargs: Any) -> None:
        self._mapping = OutputMapping(output_mapping)
        self._channels_last = channels_last
        super().__init__(model, *args, **kwargs)

    def _read_images(self, inputs: Any) -> ImageBatch:
        return read_image_batch(inputs, self._channels_last)

    def _run(self, inputs: Any) -> tuple[Any, Any]:
        if isinstance(inputs, Mapping) and "torch" in sys.modules and _is_torch_module(self.model):
            return self.model(**inputs), inputs
        return self.model(inputs), inputs

    def _adapt(self, output: Any, state: Any, images: ImageBatch, targets: list[ImageTargets]) -> Adapted:
        return Adapted(self._mapping.read(output, state, images))

    def _observed_state(self, output: Any, inputs: Any, captured: Mapping[str, Any]) -> Any:
        return inputs


def _is_torch_module(model: Any) -> bool:
    import torch

    return isinstance(model, torch.nn.Module)
