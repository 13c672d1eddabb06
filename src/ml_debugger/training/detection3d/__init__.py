"""3-D detection tracers: ``ObjectDetection3DTracer`` recognises the model family (PointPillars,
CenterPoint, BEVFormer, BEVFusion and their derivatives; MMDetection3D and OpenPCDet) and returns
its tracer. The MMDetection3D conversions are pure functions an MMEngine hook can reuse."""

from ml_debugger.training.detection3d._base import (
    BEVFormerTracer,
    BEVFusionTracer,
    CenterPointTracer,
    CustomDetection3DTracer,
    Detection3DTracer,
    PointPillarsTracer,
)
from ml_debugger.training.detection3d._factory import ObjectDetection3DTracer, detect_family
from ml_debugger.training.detection3d._mmdet3d import boxes_to_reference, predictions_from_samples, targets_from_samples

__all__ = [
    "BEVFormerTracer",
    "BEVFusionTracer",
    "CenterPointTracer",
    "CustomDetection3DTracer",
    "Detection3DTracer",
    "ObjectDetection3DTracer",
    "PointPillarsTracer",
    "boxes_to_reference",
    "detect_family",
    "predictions_from_samples",
    "targets_from_samples",
]
