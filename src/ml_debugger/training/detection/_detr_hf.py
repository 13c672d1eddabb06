"""Hugging Face DETR-family detectors: the tracer of each ``*ForObjectDetection`` class, and the
families beyond DETR's own adapter.

- RT-DETR (``RTDetrForObjectDetection``, ``RTDetrV2ForObjectDetection``) and D-FINE
  (``DFineForObjectDetection``), post-processed by ``RTDetrImageProcessor``: a sigmoid over every
  (query, class) pair and the top ``num_queries`` pairs (``num_top_queries``); no "no object" class.
- YOLOS (``YolosForObjectDetection``): as DETR, a softmax over the classes and "no object"; every
  detection token a candidate.

Boxes are normalised cxcywh as DETR's. No NMS: ``iou_thresh`` is ignored; max detections = the
number of queries (detection tokens). Per-object features: the decoder's last hidden state of each
kept query (YOLOS: the last layer's state of its detection token); image feature: the encoder's
maps pooled (RT-DETR, D-FINE) or the patch tokens averaged (YOLOS).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ml_debugger.tasks.detection2d import Thresholds
from ml_debugger.training.detection._detr import (
    ConditionalDETRTracer,
    DeformableDETRTracer,
    DETRTracer,
)
from ml_debugger.training.detection._thresholds import ThresholdPolicy


class RTDETRTracer(DETRTracer):
    """RT-DETR (sigmoid scores, top ``num_queries`` (query, class) pairs)."""

    family = "RT-DETR"
    scoring: ClassVar[str] = "sigmoid"
    policy = ThresholdPolicy(model_applies=False, uses_nms=False)

    def _model_thresholds(self) -> Thresholds:
        return Thresholds(max_detections=self._num_queries())


class RTDETRv2Tracer(RTDETRTracer):
    """RT-DETRv2 (read as RT-DETR)."""

    family = "RT-DETRv2"


class DFINETracer(RTDETRTracer):
    """D-FINE (read as RT-DETR)."""

    family = "D-FINE"


class YOLOSTracer(DETRTracer):
    """YOLOS (softmax over classes + "no object"; every detection token a candidate)."""

    family = "YOLOS"

    def _num_queries(self) -> int | None:
        return int(self.model.config.num_detection_tokens)

    def _read(self, output: Any, state: Any) -> tuple[torch.Tensor, torch.Tensor, Any, Any]:
        tokens = output.last_hidden_state  # (B, 1 + patches + detection tokens, d): [CLS], patches, queries
        first = tokens.shape[1] - output.logits.shape[1]
        return output.logits, output.pred_boxes, tokens[:, first:], tokens[:, 1:first]


HF_TRACERS: dict[str, type[DETRTracer]] = {
    "DetrForObjectDetection": DETRTracer,
    "ConditionalDetrForObjectDetection": ConditionalDETRTracer,
    "DeformableDetrForObjectDetection": DeformableDETRTracer,
    "RTDetrForObjectDetection": RTDETRTracer,
    "RTDetrV2ForObjectDetection": RTDETRv2Tracer,
    "DFineForObjectDetection": DFINETracer,
    "YolosForObjectDetection": YOLOSTracer,
}


def hf_detr_class(model: nn.Module) -> type[DETRTracer] | None:
    """The tracer of a Hugging Face DETR-family model (its class or a subclass of it), or None."""
    for cls in type(model).__mro__:
        if cls.__module__.startswith("transformers.") and cls.__name__ in HF_TRACERS:
            return HF_TRACERS[cls.__name__]
    return None
