"""CenterNet-style heatmap detectors (Objects as Points): outputs ``{"hm", "wh", "reg"}`` (or a list
of them per hourglass stack, the last one used), maps at the output stride of the input tensor.

Decoding as CenterNet's ``ctdet_decode`` does it: sigmoid of the heatmap (skipped when it is
already in [0, 1]), peaks kept by a 3x3 max-pool, the top-k (class, position) peaks (k = 100,
CenterNet's ``K``), the sub-pixel offset ``reg`` added to the peak (0.5 without ``reg``), the size
``wh`` around it (negative sizes taken as 0), all in output-map units and scaled by the stride to input pixels. No NMS.
Per-object features: the map the heads read (the input of the ``hm`` head module) sampled at each
box centre; image feature: that map pooled.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
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
from ml_debugger.training.detection._thresholds import ThresholdPolicy
from ml_debugger.training.detection._torch_base import TorchDetectionTracer


def is_centernet(model: nn.Module) -> bool:
    """A ``heads`` dict with ``"hm"`` (CenterNet's convention) or ``hm`` and ``wh`` head modules."""
    heads = getattr(model, "heads", None)
    if isinstance(heads, Mapping) and "hm" in heads:
        return True
    return all(isinstance(getattr(model, name, None), nn.Module) for name in ("hm", "wh"))


def _gather(maps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``(B, k, C)`` values of ``(B, C, H, W)`` maps at flat positions ``index`` ``(B, k)``."""
    flat = maps.flatten(2)
    return flat.gather(2, index[:, None, :].expand(-1, flat.shape[1], -1)).transpose(1, 2)


class CenterNetTracer(TorchDetectionTracer):
    """CenterNet-style heatmap heads (``hm`` / ``wh`` / ``reg``)."""

    family = "CenterNet"
    policy = ThresholdPolicy(model_applies=False, uses_nms=False, defaults=Thresholds(max_detections=100))

    def __init__(self, model: nn.Module, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)
        head = getattr(model, "hm", None)
        self._capture = (
            OutputCapture({"head_input": head}, inputs={"head_input": 0})
            if self.record_features and isinstance(head, nn.Module) else None
        )

    def _model_num_classes(self) -> int | None:
        heads = getattr(self.model, "heads", None)
        classes = heads.get("hm") if isinstance(heads, Mapping) else None
        return classes if isinstance(classes, int) else None

    @contextmanager
    def _armed(self) -> Iterator[dict[str, Any]]:
        if self._capture is None:
            yield {}
            return
        with self._capture.armed() as captured:
            yield captured

    def _run(self, inputs: Any) -> tuple[Any, Any]:
        with self._armed() as captured:
            output = self._forward(inputs)
        return output, captured

    def _adapt(self, output: Any, state: Any, images: ImageBatch, targets: list[ImageTargets]) -> Adapted:
        heads = output[-1] if isinstance(output, (list, tuple)) else output
        if not isinstance(heads, Mapping) or not {"hm", "wh"} <= set(heads):
            raise ConfigurationError(
                f"a CenterNet-style model must return a dict with 'hm' and 'wh' (and optionally 'reg'), or a list "
                f"of them; got {type(heads).__name__}"
                + (f" with keys {sorted(map(str, heads))}" if isinstance(heads, Mapping) else "")
            )
        input_w, input_h = (int(v) for v in images.sizes.max(axis=0))
        with torch.no_grad():
            boxes, scores, labels = self._decode(heads, input_w, input_h)
            predictions = [
                {"boxes": to_numpy(b), "scores": to_numpy(s), "labels": to_numpy(l)}
                for b, s, l in zip(boxes, scores, labels)
            ]
            feature_map = state.get("head_input")
            if not isinstance(feature_map, torch.Tensor) or feature_map.ndim != 4:
                return Adapted(predictions)
            size = (input_h, input_w)
            for i, (p, b) in enumerate(zip(predictions, boxes)):
                p["features"] = half_numpy(sample_at_centres([feature_map], i, b, size, by_level=False))
            gt_features = [
                half_numpy(sample_at_centres([feature_map], i, torch.as_tensor(t.boxes), size, by_level=False))
                for i, t in enumerate(targets)
            ]
            return Adapted(predictions, image_features=half_numpy(pooled([feature_map])), gt_features=gt_features)

    def _decode(self, heads: Mapping[str, torch.Tensor], input_w: int, input_h: int) -> tuple[list, list, list]:
        heat = heads["hm"].detach().float()
        if heat.min() < 0 or heat.max() > 1:  # logits, as CenterNet's heads output them
            heat = heat.sigmoid()
        heat = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
        _, classes, height, width = heat.shape
        t = self._thresholds
        scores, index = heat.flatten(1).topk(min(t.max_detections, classes * height * width), dim=1)
        labels, position = index // (height * width), index % (height * width)
        xs, ys = (position % width).float(), (position // width).float()
        reg = heads.get("reg")
        if reg is not None:
            offset = _gather(reg.detach().float(), position)
            xs, ys = xs + offset[..., 0], ys + offset[..., 1]
        else:
            xs, ys = xs + 0.5, ys + 0.5
        size = _gather(heads["wh"].detach().float(), position).clamp(min=0)  # a negative size is an empty box
        stride = heat.new_tensor([input_w / width, input_h / height] * 2)
        half_w, half_h = size[..., 0] / 2, size[..., 1] / 2
        boxes = torch.stack([xs - half_w, ys - half_h, xs + half_w, ys + half_h], dim=-1) * stride
        keep = scores > t.score_thresh
        return (
            [b[k] for b, k in zip(boxes, keep)],
            [s[k] for s, k in zip(scores, keep)],
            [c[k] for c, k in zip(labels, keep)],
        )
