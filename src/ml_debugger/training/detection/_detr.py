"""The DETR family: Hugging Face ``DetrForObjectDetection``, ``ConditionalDetrForObjectDetection``,
``DeformableDetrForObjectDetection`` and facebookresearch-style modules returning
``{"pred_logits", "pred_boxes"}`` (boxes normalised cxcywh relative to each unpadded image).
Hugging Face RT-DETR, D-FINE and YOLOS build on this adapter (``_detr_hf``).

Scores as each family's own post-processing defines them: DETR takes a softmax over the classes
and the "no object" class and keeps every query's best real class; Conditional and Deformable
DETR take a sigmoid and the top-k (query, class) pairs (k = 100 as in their post-processors).
There is no NMS: ``iou_thresh`` is ignored. Per-object features: the decoder's output embedding
of each kept query; image feature: the pooled encoder output (Hugging Face) or backbone map.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import nn

from ml_debugger.tasks.detection2d import ImageTargets, Thresholds
from ml_debugger.training.detection._arrays import ImageBatch, to_numpy
from ml_debugger.training.detection._base import Adapted
from ml_debugger.training.detection._features import OutputCapture, half_numpy, pooled
from ml_debugger.training.detection._thresholds import ThresholdPolicy
from ml_debugger.training.detection._torch_base import TorchDetectionTracer

FB_ATTRIBUTES = ("class_embed", "bbox_embed", "query_embed")


def is_transformers_model(model: nn.Module) -> bool:
    """``model`` is (or derives from) a Hugging Face ``transformers`` class."""
    return any(cls.__module__.startswith("transformers.") for cls in type(model).__mro__)


def is_fb_detr(model: nn.Module) -> bool:
    """A facebookresearch-style DETR: ``class_embed``, ``bbox_embed`` and ``query_embed`` modules."""
    return all(isinstance(getattr(model, a, None), nn.Module) for a in FB_ATTRIBUTES)


def fb_detr_class(model: nn.Module) -> type[DETRTracer]:
    """The tracer of a facebookresearch-style DETR, by its class name (sigmoid variants say so)."""
    name = type(model).__name__.lower()
    if "deformable" in name:
        return DeformableDETRTracer
    return ConditionalDETRTracer if "conditional" in name else DETRTracer


def _last_map(value: Any) -> torch.Tensor | None:
    """The deepest ``(B, C, H, W)`` map of a backbone output (a tensor, a list / tuple / dict of
    them, or facebookresearch's ``(features, positions)`` of NestedTensors)."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], (list, tuple, Mapping)):
        value = value[0]  # facebookresearch Joiner: (features, position encodings)
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)) and value:
        value = value[-1]
    value = getattr(value, "tensors", value)  # NestedTensor
    return value if isinstance(value, torch.Tensor) and value.ndim == 4 else None


class DETRTracer(TorchDetectionTracer):
    """DETR (softmax over classes + "no object"; every query a candidate)."""

    family = "DETR"
    scoring: ClassVar[str] = "softmax"
    policy = ThresholdPolicy(model_applies=False, uses_nms=False)

    def __init__(self, model: nn.Module, *args: Any, **kwargs: Any) -> None:
        self._hf = is_transformers_model(model)
        super().__init__(model, *args, **kwargs)
        modules = {
            name: getattr(model, name) for name in ("transformer", "backbone")
            if isinstance(getattr(model, name, None), nn.Module)
        }
        self._capture = OutputCapture(modules) if self.record_features and not self._hf and modules else None

    def _class_embed(self) -> nn.Module | None:
        embed = getattr(self.model, "class_embed", None)
        return embed[-1] if isinstance(embed, nn.ModuleList) else embed

    def _model_num_classes(self) -> int | None:
        if self._hf:
            return int(self.model.config.num_labels)
        width = getattr(self._class_embed(), "out_features", None)
        return None if width is None else width - (1 if self.scoring == "softmax" else 0)

    def _model_label_names(self) -> Sequence[str] | None:
        if not self._hf:
            return None
        id2label = self.model.config.id2label
        return [str(id2label.get(i, i)) for i in range(self.model.config.num_labels)]

    def _num_queries(self) -> int | None:
        queries = self.model.config.num_queries if self._hf else getattr(self.model, "num_queries", None)
        return queries if isinstance(queries, int) else None

    def _model_thresholds(self) -> Thresholds:
        return Thresholds(max_detections=self._num_queries() if self.scoring == "softmax" else None)

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

    def _read(self, output: Any, state: Any) -> tuple[torch.Tensor, torch.Tensor, Any, Any]:
        """``(logits, boxes, decoder query states (B, Q, d) or None, encoder output or None)``; the
        encoder output is tokens ``(B, n, d)``, a ``(B, C, H, W)`` map or a list of maps."""
        if self._hf:
            return output.logits, output.pred_boxes, output.last_hidden_state, output.encoder_last_hidden_state
        logits = output["pred_logits"]
        return logits, output["pred_boxes"], self._fb_queries(state, logits.shape[:2]), _last_map(state.get("backbone"))

    def _adapt(self, output: Any, state: Any, images: ImageBatch, targets: list[ImageTargets]) -> Adapted:
        logits, boxes, queries, memory = self._read(output, state)
        with torch.no_grad():
            scores, labels, query = self._scores(logits.detach().float())
            predictions = []
            for b, (width, height) in enumerate(images.sizes):
                scale = boxes.new_tensor([width, height, width, height], dtype=torch.float32)
                xyxy = _cxcywh_to_xyxy(boxes[b].detach().float()[query[b]]) * scale
                p = {"boxes": to_numpy(xyxy), "scores": to_numpy(scores[b]), "labels": to_numpy(labels[b])}
                if self.record_features and queries is not None:
                    p["features"] = half_numpy(queries[b, query[b]])
                predictions.append(p)
            image_features = None
            if self.record_features and memory is not None:
                image_features = half_numpy(_pooled_memory(memory))
        return Adapted(predictions, image_features=image_features)

    def _scores(self, logits: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Per image: kept scores (highest first), labels and the query each came from."""
        t = self._thresholds
        if self.scoring == "softmax":
            best, labels = logits.softmax(-1)[..., :-1].max(-1)
            candidates = torch.arange(logits.shape[1], device=logits.device).expand_as(best)
        else:
            flat = logits.sigmoid().flatten(1)
            best, index = flat.topk(min(t.max_detections, flat.shape[1]), dim=1)
            candidates, labels = index // logits.shape[2], index % logits.shape[2]
        out: tuple[list, list, list] = ([], [], [])
        for s, l, q in zip(best, labels, candidates):
            keep = torch.nonzero(s > t.score_thresh).flatten()
            keep = keep[s[keep].argsort(descending=True, stable=True)][: t.max_detections]
            for part, value in zip(out, (s[keep], l[keep], q[keep])):
                part.append(value)
        return out

    def _fb_queries(self, state: Mapping[str, Any], batch_queries: tuple[int, int]) -> torch.Tensor | None:
        """The last decoder layer's output ``(B, Q, d)`` from the transformer's first output."""
        hidden = state.get("transformer")
        hidden = hidden[0] if isinstance(hidden, (tuple, list)) else hidden
        if isinstance(hidden, torch.Tensor) and hidden.ndim == 4:
            hidden = hidden[-1]
        if isinstance(hidden, torch.Tensor) and tuple(hidden.shape[:2]) == tuple(batch_queries):
            return hidden.detach().float()
        return None


def _pooled_memory(memory: Any) -> torch.Tensor:
    """``(B, d)``: tokens ``(B, n, d)`` averaged, or ``(B, C, H, W)`` maps (one or a list) pooled."""
    if isinstance(memory, torch.Tensor) and memory.ndim == 3:
        return memory.detach().float().mean(dim=1)
    return pooled(list(memory) if isinstance(memory, (list, tuple)) else [memory])


def _cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    centre, size = boxes[:, :2], boxes[:, 2:]
    return torch.cat([centre - size / 2, centre + size / 2], dim=1)


class ConditionalDETRTracer(DETRTracer):
    """Conditional DETR (sigmoid scores, top-100 (query, class) pairs)."""

    family = "Conditional DETR"
    scoring = "sigmoid"
    policy = ThresholdPolicy(model_applies=False, uses_nms=False, defaults=Thresholds(max_detections=100))


class DeformableDETRTracer(ConditionalDETRTracer):
    """Deformable DETR (sigmoid scores, top-100 (query, class) pairs)."""

    family = "Deformable DETR"
