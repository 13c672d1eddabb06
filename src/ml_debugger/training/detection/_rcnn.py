"""torchvision two-stage detectors (Faster, Mask, Keypoint R-CNN; boxes only).

Per-object features are the box head's representation, the vector the model's own classifier
reads. For a detection that is the representation of the proposal it was classified from, which
the forward pass already computed: hooks keep the proposals, the box head's output and the box
predictor's output, and each detection is matched to its proposal. Ground-truth boxes (and any
detection that cannot be matched) go through ``box_roi_pool`` + ``box_head`` on the backbone
features of the same pass, in the transform's resized image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops import boxes as box_ops

from ml_debugger.tasks.detection2d import Thresholds
from ml_debugger.training.detection._features import OutputCapture, half_numpy
from ml_debugger.training.detection._thresholds import ThresholdPolicy
from ml_debugger.training.detection._torchvision import (
    TorchvisionTracer,
    attribute_thresholds,
)

MATCH_TOLERANCE = 0.05  # pixels: a proposal's decoded box and a detection's box are the same box
MATCHING_SINCE = (0, 13)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("+")[0].split(".")[:2] if p.isdigit())


class FasterRCNNTracer(TorchvisionTracer):
    """torchvision ``GeneralizedRCNN``: box-head features of detections (their proposals) and of
    ground-truth boxes."""

    family = "torchvision Faster R-CNN"
    policy = ThresholdPolicy(
        model_applies=True,
        hint="model.roi_heads.score_thresh / model.roi_heads.nms_thresh / model.roi_heads.detections_per_img",
    )

    def __init__(self, model: nn.Module, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)
        if self._capture is not None:
            heads = model.roi_heads
            self._capture = OutputCapture(
                {"transform": model.transform, "backbone": model.backbone, "proposals": heads.box_roi_pool,
                 "box_head": heads.box_head, "box_predictor": heads.box_predictor},
                inputs={"proposals": 1},
            )

    def _model_thresholds(self) -> Thresholds:
        return attribute_thresholds(self.model.roi_heads)

    def _model_num_classes(self) -> int | None:
        cls_score = getattr(getattr(self.model.roi_heads, "box_predictor", None), "cls_score", None)
        return getattr(cls_score, "out_features", None)

    def _object_features(
        self, state: Mapping[str, Any], output: Any, features: Mapping[str, torch.Tensor], image_list: Any,
        pred_boxes: list[torch.Tensor], gt_boxes: list[torch.Tensor],
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        rows = self._proposal_rows(state, output, pred_boxes, image_list.image_sizes)
        # one box-head pass for the ground truth and the detections that matched no proposal
        missing = [b[r < 0] for b, r in zip(pred_boxes, rows)]
        computed = self._box_head(features, image_list, [torch.cat([m, g]) for m, g in zip(missing, gt_boxes)])
        pred, gt = [], []
        for r, m, c in zip(rows, missing, computed):
            matched = r >= 0
            out = torch.empty(len(r), c.shape[1], dtype=c.dtype, device=c.device)
            out[matched] = state["box_head"][r[matched]].detach().to(out.dtype)
            out[~matched] = c[: len(m)]
            pred.append(half_numpy(out))
            gt.append(half_numpy(c[len(m):]))
        return pred, gt

    def _box_head(self, features: Mapping[str, torch.Tensor], image_list: Any, boxes: list[torch.Tensor]) -> list:
        heads = self.model.roi_heads
        dtype = next(iter(features.values())).dtype
        rois = heads.box_roi_pool(features, [b.to(dtype) for b in boxes], image_list.image_sizes)
        return list(heads.box_head(rois).float().split([len(b) for b in boxes]))

    def _proposal_rows(
        self, state: Mapping[str, Any], output: Any, pred_boxes: list[torch.Tensor], image_sizes: list
    ) -> list[torch.Tensor]:
        """Per image, the row of the box head's output each detection was classified from (-1: none).

        Relies on how ``RoIHeads.postprocess_detections`` (torchvision >= 0.13) makes detections:
        each is one (proposal, class) pair scored ``softmax(class_logits)`` with its box decoded by
        ``roi_heads.box_coder`` from ``box_regression`` and clipped to the image. A detection is
        matched only to a pair with its exact score and the same box; anything else is left to
        ``_box_head``, so a change there costs speed, never correctness.
        """
        unmatched = [torch.full((len(b),), -1, dtype=torch.long, device=b.device) for b in pred_boxes]
        proposals, predicted = state.get("proposals"), state.get("box_predictor")
        if (_version(torchvision.__version__) < MATCHING_SINCE or not isinstance(proposals, (list, tuple))
                or not isinstance(predicted, tuple) or "box_head" not in state):
            return unmatched
        logits, regression = (p.detach() for p in predicted)
        counts = [len(p) for p in proposals]
        scores_per_image = F.softmax(logits, -1).split(counts)
        regression_per_image = regression.reshape(len(logits), -1, 4).split(counts)
        offset = 0
        for i, o in enumerate(output):
            labels, scores = o["labels"], o["scores"].detach()
            props, cands = (scores_per_image[i][:, labels] == scores[None]).nonzero(as_tuple=True)
            if len(props):
                decoded = self.model.roi_heads.box_coder.decode_single(
                    regression_per_image[i][props, labels[cands]], proposals[i][props].detach()
                )
                decoded = box_ops.clip_boxes_to_image(decoded, image_sizes[i])
                same = (decoded - pred_boxes[i][cands]).abs().amax(dim=1) <= MATCH_TOLERANCE
                unmatched[i][cands[same]] = offset + props[same]
            offset += counts[i]
        return unmatched
