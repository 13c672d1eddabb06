"""The 3-D detection tracer: runs a detector, converts its output and the ground truth to the
reference's box layout, filters the detections with the recorded thresholds, adds points-in-box
counts and BEV features, and records one row per frame."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
from torch import nn

from ml_debugger.core import TraceSession
from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.store import TraceStore
from ml_debugger.tasks.detection3d import (
    Detection3DBatch,
    FrameBoxes,
    Thresholds,
    make_detection3d_batch,
    predictions_from,
    targets_from,
)
from ml_debugger.training._torch import to_numpy
from ml_debugger.training.classification import _distributed_rank
from ml_debugger.training.detection3d import _mmdet3d, _openpcdet
from ml_debugger.training.detection3d._features import BEVCapture
from ml_debugger.training.detection3d._nms import nms_bev
from ml_debugger.training.detection3d._outputs import OutputMapping, mapped_predictions, predictions_from_output
from ml_debugger.training.detection3d._points import Frame, count_points_in_boxes, hash_frames
from ml_debugger.training.detection3d._settings import checked_pc_range, first, resolve


def _subset(frame: FrameBoxes, keep: np.ndarray) -> FrameBoxes:
    arrays = {
        name: getattr(frame, name)[keep]
        for name in ("boxes", "labels", "scores", "velocities", "num_points", "features")
        if getattr(frame, name) is not None
    }
    if frame.attributes is not None:
        arrays["attributes"] = tuple(frame.attributes[i] for i in keep)
    return replace(frame, **arrays)


class Detection3DTracer:
    """Records a 3-D detector's predictions and ground truth, one row per frame.

    Build one with :func:`ObjectDetection3DTracer`, which picks the family's subclass. Calling the
    tracer runs the model on ``inputs`` (an ``(N, 4+)`` point tensor, ``(B, N, 4+)`` or a list of
    them, a dict with ``points`` / ``img`` / ``img_metas``, an MMEngine data batch or an OpenPCDet
    ``batch_dict``), records the batch and returns the model's own output unchanged.

    Attributes:
        family: the model family (``"PointPillars"``, ``"CenterPoint"``, ``"BEVFormer"``, ``"BEVFusion"``).
        score_thresh, iou_thresh, max_detections_per_frame: the thresholds the recorded detections
            pass (``iou_thresh`` None when no NMS is involved).
        pc_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` or None when unknown.
        label_names: class names by label, when the model or the caller gives them.
    """

    family: ClassVar[str] = "custom"
    #: The tracer applies class-wise BEV-IoU NMS at ``iou_thresh`` (PointPillars only).
    tracer_nms: ClassVar[bool] = False
    #: DETR-style heads without NMS: ``iou_thresh`` is ignored.
    nms_free: ClassVar[bool] = False
    requires_pc_range: ClassVar[bool] = False
    #: The model's BEV maps (``pts_neck`` / ``neck`` / OpenPCDet ``backbone_2d``) give per-box features.
    bev_features: ClassVar[bool] = True

    def __init__(
        self,
        model: nn.Module,
        model_name: str,
        version_name: str,
        score_thresh: float | None = None,
        iou_thresh: float | None = None,
        max_detections_per_frame: int | None = None,
        pc_range: Sequence[float] | None = None,
        *,
        output_mapping: OutputMapping | None = None,
        label_names: Sequence[str] | None = None,
        record_features: bool = True,
        strict: bool = False,
        store: TraceStore | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        if output_mapping is not None and not callable(output_mapping):
            raise ConfigurationError(
                f"output_mapping must be a callable(output) -> per-frame dicts; got {type(output_mapping).__name__}"
            )
        self.model = model
        self._framework = _openpcdet if _openpcdet.is_model(model) else _mmdet3d
        settings = self._framework.settings(model)
        self.pc_range = checked_pc_range(pc_range) if pc_range is not None else settings.pc_range
        if self.pc_range is None and self.requires_pc_range:
            raise ConfigurationError(
                f"{self.family} models need pc_range=[x_min, y_min, z_min, x_max, y_max, z_max]: it could not be "
                f"inferred from {type(model).__name__} (no voxel layer, and no 6-value pc_range on its box coder)"
            )
        self._post = resolve(
            self.family,
            tracer_nms=self.tracer_nms,
            nms_free=self.nms_free,
            score_thresh=score_thresh,
            iou_thresh=iou_thresh,
            max_detections=max_detections_per_frame,
            model=settings,
        )
        self.score_thresh = self._post.score_thresh
        self.iou_thresh = self._post.iou_thresh
        self.max_detections_per_frame = self._post.max_detections
        self.label_names = tuple(str(n) for n in label_names) if label_names is not None else settings.label_names
        self.n_classes = first(settings.n_classes, None if label_names is None else len(self.label_names))
        if self.label_names is not None and self.n_classes is not None and len(self.label_names) != self.n_classes:
            raise ConfigurationError(
                f"label_names has {len(self.label_names)} names but the model has {self.n_classes} classes"
            )
        self._output_mapping = output_mapping
        source = self._framework.bev_source(model) if record_features and self.bev_features and self.pc_range else None
        self._bev = None if source is None else BEVCapture(*source, self.pc_range)
        self._watched = False
        self._session = TraceSession(
            model_name, version_name, "detection3d", store=store, rank=_distributed_rank(), strict=strict
        )

    @property
    def session(self) -> TraceSession:
        return self._session

    def __call__(
        self,
        inputs: Any,
        targets: Any = None,
        input_ids: Any = None,
        dataset_type: str = "train",
        n_epoch: int | None = None,
        global_step: int | None = None,
    ) -> Any:
        """Run the model on ``inputs``, record the batch, and return the model's output unchanged.

        ``targets`` is the ground truth in either reference format; it may be omitted when the
        inputs carry it (an MMEngine data batch's data samples, an OpenPCDet ``gt_boxes``).
        """
        frames = self._framework.frames(inputs)
        hashes = hash_frames(frames)  # before the model runs: OpenPCDet models extend their input dict
        targets = self._framework.carried_targets(inputs) if targets is None else targets
        input_ids = self._framework.carried_ids(inputs) if input_ids is None else input_ids
        if self._bev is None:
            output = self._framework.run(self.model, inputs)
            maps = None
        else:
            with self._bev.capture():
                output = self._framework.run(self.model, inputs)
            maps = self._bev.maps(len(frames))
        batch = self._batch(output, targets, frames, hashes, input_ids, maps)
        self._session.record(batch, dataset_type=dataset_type, n_epoch=n_epoch, global_step=global_step)
        return output

    def record(
        self,
        inputs: Any,
        outputs: Any,
        targets: Any = None,
        *,
        input_ids: Any = None,
        dataset_type: str = "train",
        n_epoch: int | None = None,
        global_step: int | None = None,
    ) -> None:
        """Record outputs the caller already has (e.g. from a framework's validation loop); BEV
        features are recorded when the forward pass ran inside :meth:`watch`."""
        batch = self.batch_of(inputs, outputs, targets, input_ids=input_ids)
        self._session.record(batch, dataset_type=dataset_type, n_epoch=n_epoch, global_step=global_step)

    def watch(self) -> AbstractContextManager[None]:
        """Keep the BEV maps of a forward pass the caller runs itself (a framework's validation step),
        for the next :meth:`record` / :meth:`batch_of`; a no-op when no BEV features are recorded."""
        if self._bev is None:
            return nullcontext()
        self._watched = True
        return self._bev.capture()

    def batch_of(self, inputs: Any, outputs: Any, targets: Any = None, *, input_ids: Any = None) -> Detection3DBatch:
        """The validated rows of outputs the caller already has, as :meth:`record` records them."""
        frames = self._framework.frames(inputs)
        targets = self._framework.carried_targets(inputs) if targets is None else targets
        input_ids = self._framework.carried_ids(inputs) if input_ids is None else input_ids
        maps = self._bev.maps(len(frames)) if self._watched and self._bev is not None else None
        self._watched = False
        return self._batch(outputs, targets, frames, hash_frames(frames), input_ids, maps)

    def _batch(
        self,
        output: Any,
        targets: Any,
        frames: list[Frame],
        hashes: np.ndarray,
        input_ids: Any,
        maps: Any,
    ) -> Detection3DBatch:
        raw = (
            predictions_from_output(output)
            if self._output_mapping is None
            else mapped_predictions(self._output_mapping, output)
        )
        if len(raw) != len(frames):
            raise TraceValidationError(f"the model output has {len(raw)} frames but the inputs have {len(frames)}")
        if targets is None:
            raise TraceValidationError("targets is required: the ground truth of each frame (boxes_3d, labels_3d)")
        predictions = [self._select(frame) for frame in predictions_from(raw)]
        truth = targets_from(_mmdet3d.targets_to_numpy(targets), len(frames))
        for i, frame in enumerate(frames):
            if frame.points is not None:  # one pass over the points for both sides
                counted = [predictions[i].boxes] + ([truth[i].boxes] if truth[i].num_points is None else [])
                counts = count_points_in_boxes(frame.points, np.concatenate(counted))
                predictions[i] = replace(predictions[i], num_points=counts[: len(predictions[i])])
                if truth[i].num_points is None:
                    truth[i] = replace(truth[i], num_points=counts[len(predictions[i]) :])
            if maps is not None:
                predictions[i] = replace(
                    predictions[i], features=self._bev.sample(maps, i, predictions[i].boxes[:, :2])
                )
                truth[i] = replace(truth[i], features=self._bev.sample(maps, i, truth[i].boxes[:, :2]))
        return make_detection3d_batch(
            predictions,
            truth,
            input_hashes=hashes,
            input_ids=None if input_ids is None else to_numpy(input_ids),
            frame_features=None if maps is None else BEVCapture.pooled(maps),
            pc_range=self.pc_range,
            thresholds=Thresholds(self.score_thresh, self.iou_thresh, self.max_detections_per_frame),
            label_names=self.label_names,
            n_classes=self.n_classes,
        )

    def _select(self, frame: FrameBoxes) -> FrameBoxes:
        """The detections that pass the score threshold, the tracer's NMS (PointPillars) and the
        per-frame limit, in the model's order."""
        post = self._post
        keep = np.flatnonzero(frame.scores >= post.score_thresh)
        if post.nms and len(keep):
            keep = keep[nms_bev(frame.boxes[keep], frame.scores[keep], frame.labels[keep], post.iou_thresh)]
        if len(keep) > post.max_detections:
            keep = keep[np.argsort(-frame.scores[keep], kind="stable")[: post.max_detections]]
        keep = np.sort(keep)
        return frame if len(keep) == len(frame) else _subset(frame, keep)

    def flush(self) -> None:
        """Block until everything traced so far is written to disk (not yet committed)."""
        self._session.flush()

    def wait_for_save(self, n_epoch: int | None = None) -> None:
        """Flush and commit ``n_epoch`` (every traced epoch when ``None``) so it can be evaluated."""
        self._session.wait_for_save(n_epoch)

    def close(self) -> None:
        """Write what is buffered, stop the writer and remove the feature hook."""
        if self._bev is not None:
            self._bev.remove()
            self._bev = None
        self._session.close()


class PointPillarsTracer(Detection3DTracer):
    """PointPillars and derivatives (PointPillars++, EFMF-Pillars): anchor heads whose detections
    the tracer may further filter with class-wise BEV-IoU NMS at ``iou_thresh``."""

    family = "PointPillars"
    tracer_nms = True


class CenterPointTracer(Detection3DTracer):
    """CenterPoint and derivatives (CenterFormer, VoxelNeXt, TransFusion, Voxel R-CNN)."""

    family = "CenterPoint"


class BEVFormerTracer(Detection3DTracer):
    """BEVFormer and derivatives (BEVDet, BEVDet4D, StreamPETR): camera-only DETR-style heads,
    no NMS (``iou_thresh`` is ignored) and ``pc_range`` required."""

    family = "BEVFormer"
    nms_free = True
    requires_pc_range = True
    bev_features = False


class BEVFusionTracer(Detection3DTracer):
    """BEVFusion and derivatives (Att-BEVFusion, SAMFusion): LiDAR + camera."""

    family = "BEVFusion"


class CustomDetection3DTracer(Detection3DTracer):
    """A model of no known family, read through ``output_mapping``."""

    family = "custom"
