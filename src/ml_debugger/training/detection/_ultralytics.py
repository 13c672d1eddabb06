"""Ultralytics YOLOv8 and newer (YOLO11, YOLO26, ...; a ``YOLO`` object or its ``DetectionModel``).

The tracer does what Ultralytics' predictor does with images: letterbox them to the model's
``imgsz`` (resize keeping the aspect ratio, pad with grey to a multiple of the stride), run the
``DetectionModel``, apply Ultralytics' own NMS with the model's settings (``conf``, ``iou``,
``max_det``, ``classes``, ``agnostic_nms`` from its overrides, then its args), and undo the
letterbox so boxes are in pixels of the images given to the tracer. It returns the
``DetectionModel``'s raw output unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import ultralytics
from torch import nn
from ultralytics.engine.model import Model
from ultralytics.nn.modules import OBB, Detect
from ultralytics.nn.tasks import DetectionModel

from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.tasks.detection2d import ImageTargets, Thresholds
from ml_debugger.training.detection._arrays import ImageBatch, to_numpy
from ml_debugger.training.detection._base import Adapted
from ml_debugger.training.detection._features import (
    OutputCapture,
    half_numpy,
    pooled,
    sample_at_centres,
)
from ml_debugger.training.detection._thresholds import ThresholdPolicy
from ml_debugger.training.detection._torch_base import (
    TorchDetectionTracer,
    require_eval,
)

try:  # moved from ultralytics.utils.ops to ultralytics.utils.nms in 8.3
    from ultralytics.utils.nms import non_max_suppression
except ImportError:
    from ultralytics.utils.ops import non_max_suppression

MIN_VERSION = (8, 1)
PAD_VALUE = 114 / 255  # Ultralytics' LetterBox pads with grey 114


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


@dataclass(frozen=True)
class Letterbox:
    """How one image was letterboxed: ``x_letterboxed = x * gain_x + pad_x`` (likewise for y)."""

    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int

    def forward(self, boxes: torch.Tensor) -> torch.Tensor:
        gain = boxes.new_tensor([self.gain_x, self.gain_y, self.gain_x, self.gain_y])
        return boxes * gain + boxes.new_tensor([self.pad_x, self.pad_y, self.pad_x, self.pad_y])

    def undo(self, boxes: torch.Tensor) -> torch.Tensor:
        gain = boxes.new_tensor([self.gain_x, self.gain_y, self.gain_x, self.gain_y])
        return (boxes - boxes.new_tensor([self.pad_x, self.pad_y, self.pad_x, self.pad_y])) / gain


def letterbox(images: list[torch.Tensor], size: tuple[int, int], stride: int) -> tuple[torch.Tensor, list[Letterbox]]:
    """A batch letterboxed as Ultralytics' predictor does: each image resized to fit ``size`` (h, w),
    padded (centred) to a multiple of ``stride`` when all images share a shape, else to ``size``.
    Float images are taken as 0-1 RGB (as Ultralytics takes tensors), uint8 ones are divided by 255."""
    same_shapes = len({tuple(i.shape) for i in images}) == 1
    out, params = [], []
    for image in images:
        height, width = image.shape[-2:]
        ratio = min(size[0] / height, size[1] / width)
        new_w, new_h = max(round(width * ratio), 1), max(round(height * ratio), 1)
        pad_w, pad_h = size[1] - new_w, size[0] - new_h
        if same_shapes:
            pad_w, pad_h = pad_w % stride, pad_h % stride
        left, top = round(pad_w / 2 - 0.1), round(pad_h / 2 - 0.1)
        right, bottom = round(pad_w / 2 + 0.1), round(pad_h / 2 + 0.1)
        x = image.float() / 255 if image.dtype == torch.uint8 else image.float()
        if (new_h, new_w) != (height, width):
            x = F.interpolate(x[None], size=(new_h, new_w), mode="bilinear", align_corners=False)[0]
        if left or right or top or bottom:
            x = F.pad(x, (left, right, top, bottom), value=PAD_VALUE)
        out.append(x)
        params.append(Letterbox(new_w / width, new_h / height, left, top))
    return torch.stack(out), params


def check_version() -> None:
    """ConfigurationError unless the installed Ultralytics is ``MIN_VERSION`` or newer."""
    if _version(ultralytics.__version__) < MIN_VERSION:
        raise ConfigurationError(
            f"Ultralytics {ultralytics.__version__} is too old; ml-debugger needs {'.'.join(map(str, MIN_VERSION))} "
            "or newer"
        )


def label_names(names: Any, count: int) -> list[str] | None:
    """Ultralytics' ``names`` (a dict ``{id: name}`` or a list) as the name of class ``i`` at position ``i``."""
    if isinstance(names, Mapping):
        return [str(names.get(i, i)) for i in range(count)]
    return None if names is None else [str(n) for n in names]


def _settings(model: Any, net: DetectionModel) -> dict[str, Any]:
    """The model's settings: its args (training args of a checkpoint), then the YOLO object's overrides."""
    args = getattr(net, "args", None) or {}
    settings = dict(args) if isinstance(args, Mapping) else dict(vars(args))
    settings.update(getattr(model, "overrides", None) or {})
    return settings


def detection_model(model: nn.Module) -> DetectionModel:
    """The ``DetectionModel`` of a YOLO object (or the model itself); ConfigurationError otherwise."""
    check_version()
    net = model.model if isinstance(model, Model) else model
    head = net.model[-1] if isinstance(net, DetectionModel) else None
    if not isinstance(head, Detect) or isinstance(head, OBB):
        raise ConfigurationError(
            f"the Ultralytics model ({type(net).__name__} with a {type(head).__name__} head) is not a YOLO detector "
            "with axis-aligned boxes; supported: YOLOv8 and newer detect / segment / pose models (a Detect head)"
        )
    return net


class UltralyticsYOLOTracer(TorchDetectionTracer):
    """Ultralytics YOLOv8 and newer. Per-object features: the neck's feature maps (the detect head's
    inputs) sampled at each box centre, every level concatenated; image feature: the pooled maps."""

    family = "Ultralytics YOLO"
    policy = ThresholdPolicy(model_applies=False, defaults=Thresholds(None, 0.7, 300))

    def __init__(self, model: nn.Module, *args: Any, **kwargs: Any) -> None:
        self._net = detection_model(model)
        self._settings = _settings(model, self._net)
        super().__init__(model, *args, **kwargs)
        imgsz = self._settings.get("imgsz") or 640
        self._size = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[-1]))
        self._stride = int(max(self._net.stride))
        head = self._net.model[-1]
        self._capture = OutputCapture({"neck": head}, inputs={"neck": 0}) if self.record_features else None

    def _model_thresholds(self) -> Thresholds:
        max_det = self._settings.get("max_det")
        max_det = None if max_det is None else int(max_det)
        return Thresholds(self._settings.get("conf"), self._settings.get("iou"), max_det)

    def _model_num_classes(self) -> int | None:
        return int(self._net.model[-1].nc)

    def _model_label_names(self) -> list[str] | None:
        return label_names(getattr(self._net, "names", None), self._model_num_classes())

    def _observed_state(self, output: Any, inputs: Any, captured: Mapping[str, Any]) -> Any:
        raise ConfigurationError(
            f"{self.family}: the tracer letterboxes the images and runs the network itself, so an output computed "
            "elsewhere cannot be read; trace with tracer(images, targets, ...)"
        )

    def _run(self, inputs: Any) -> tuple[Any, Any]:
        require_eval(self._net, self.family)
        batched = isinstance(inputs, torch.Tensor) and inputs.ndim == 4
        if not batched and not (
            isinstance(inputs, (list, tuple)) and all(isinstance(i, torch.Tensor) and i.ndim == 3 for i in inputs)
        ):
            raise TraceValidationError(
                "inputs must be a (batch, 3, height, width) tensor or a list of (3, height, width) tensors"
            )
        images = list(inputs)
        batch, boxes = letterbox(images, self._size, self._stride)
        weight = next(self._net.parameters())
        batch = batch.to(weight.device, weight.dtype)  # as the predictor feeds a half-precision or GPU model
        if self._capture is None:
            return self._net(batch), (boxes, batch.shape[-2:], {})
        with self._capture.armed() as captured:
            output = self._net(batch)
        return output, (boxes, batch.shape[-2:], captured)

    def _adapt(self, output: Any, state: Any, images: ImageBatch, targets: list[ImageTargets]) -> Adapted:
        boxes, input_size, captured = state
        t = self._thresholds
        raw = output[0] if isinstance(output, (list, tuple)) else output  # eval: (decoded, head outputs)
        with torch.no_grad():
            detections = non_max_suppression(
                raw.detach(), t.score_thresh, t.iou_thresh, classes=self._settings.get("classes"),
                agnostic=bool(self._settings.get("agnostic_nms")), max_det=t.max_detections,
                nc=self._model_num_classes(), end2end=bool(getattr(self._net, "end2end", False)),
            )
            predictions = [
                {"boxes": to_numpy(box.undo(d[:, :4].float())), "scores": to_numpy(d[:, 4]),
                 "labels": to_numpy(d[:, 5]).astype(np.int64)}
                for d, box in zip(detections, boxes)
            ]
            if "neck" not in captured:
                return Adapted(predictions)
            maps = list(captured["neck"])
            size = (int(input_size[0]), int(input_size[1]))
            for i, (d, p) in enumerate(zip(detections, predictions)):
                p["features"] = half_numpy(sample_at_centres(maps, i, d[:, :4], size, by_level=False))
            gt_features = [
                half_numpy(sample_at_centres(
                    maps, i, box.forward(torch.as_tensor(truth.boxes, device=maps[0].device)), size, by_level=False
                ))
                for i, (truth, box) in enumerate(zip(targets, boxes))
            ]
            return Adapted(predictions, image_features=half_numpy(pooled(maps)), gt_features=gt_features)
