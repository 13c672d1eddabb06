"""``ObjectDetection3DTracer``: recognise a 3-D detector's family and build its tracer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from torch import nn

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.training.detection3d._base import (
    BEVFormerTracer,
    BEVFusionTracer,
    CenterPointTracer,
    CustomDetection3DTracer,
    Detection3DTracer,
    PointPillarsTracer,
)
from ml_debugger.training.detection3d._outputs import FORMATS, OutputMapping

TRACERS: dict[str, type[Detection3DTracer]] = {
    "PointPillars": PointPillarsTracer,
    "CenterPoint": CenterPointTracer,
    "BEVFormer": BEVFormerTracer,
    "BEVFusion": BEVFusionTracer,
}
DERIVATIVES = {
    "PointPillars": ("PointPillars++", "EFMF-Pillars"),
    "CenterPoint": ("CenterFormer", "VoxelNeXt", "TransFusion", "Voxel R-CNN"),
    "BEVFormer": ("BEVDet", "BEVDet4D", "StreamPETR"),
    "BEVFusion": ("Att-BEVFusion", "SAMFusion"),
}
#: Detector class names (lower case, letters and digits only) of each family, in MMDetection3D,
#: its projects, OpenPCDet and the derivatives' own repositories. Checked in this order.
DETECTOR_NAMES = (
    ("BEVFusion", ("bevfusion", "attbevfusion", "samfusion")),
    (
        "BEVFormer",
        (
            "bevformer",
            "bevdet",
            "bevdet4d",
            "bevdepth",
            "bevdepth4d",
            "bevstereo4d",
            "streampetr",
            "petr3d",
            "petr",
            "detr3d",
        ),
    ),
    ("CenterPoint", ("centerpoint", "centerformer", "voxelnext", "transfusion", "transfusiondetector", "voxelrcnn")),
    ("PointPillars", ("pointpillar", "pointpillars", "pointpillarsplusplus", "pointpillarspp", "efmfpillars")),
)
#: Submodule class names that make a detector a member of a family by structure.
CENTER_HEADS = {"centerhead", "centerformerbboxhead", "transfusionhead", "voxelnexthead", "voxelrcnnhead"}
ANCHOR_HEADS = {"anchor3dhead", "anchorheadsingle", "anchorheadmulti", "freeanchor3dhead", "shapeawarehead"}
PILLAR_MODULES = {
    "pointpillarsscatter",
    "pillarfeaturenet",
    "dynamicpillarfeaturenet",
    "pointpillarscatter",
    "pillarvfe",
    "dynamicpillarvfe",
}
POINT_MODULES = {"voxelization", "voxelizationbygridshape", "hardvfe", "hardsimplevfe", "dynamicvfe", "sparseencoder"}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _class_names(module: nn.Module) -> set[str]:
    return {_key(cls.__name__) for cls in type(module).__mro__}


def detect_family(model: nn.Module) -> str | None:
    """The family of ``model`` by its class names, else by its structure, else None.

    Structure: a centre-based head (``CenterHead``, ``TransFusionHead``...) is CenterPoint; an
    anchor head over pillars (``PointPillarsScatter`` / ``PillarFeatureNet``) is PointPillars; image
    backbone, view transform and fusion layer together are BEVFusion; an image backbone without
    any point branch is BEVFormer.
    """
    own = _class_names(model)
    for family, names in DETECTOR_NAMES:
        if own & set(names):
            return family
    parts = set().union(*(_class_names(m) for m in model.modules()))
    names = {name for name, _ in model.named_children()}
    if parts & CENTER_HEADS:
        return "CenterPoint"
    if parts & ANCHOR_HEADS and parts & PILLAR_MODULES:
        return "PointPillars"
    has_points = (
        bool(parts & (PILLAR_MODULES | POINT_MODULES)) or "pts_voxel_encoder" in names or "voxel_encoder" in names
    )
    if "img_backbone" in names and {"view_transform", "fusion_layer"} <= names:
        return "BEVFusion"
    if "img_backbone" in names and not has_points:
        return "BEVFormer"
    return None


def _families_text() -> str:
    return "; ".join(f"{family} ({', '.join(DERIVATIVES[family])})" for family in TRACERS)


def ObjectDetection3DTracer(
    model: nn.Module,
    model_name: str,
    version_name: str,
    score_thresh: float | None = None,
    iou_thresh: float | None = None,
    max_detections_per_frame: int | None = None,
    pc_range: Sequence[float] | None = None,
    *,
    family: str | None = None,
    output_mapping: OutputMapping | None = None,
    **kwargs: Any,
) -> Detection3DTracer:
    """The tracer of ``model``'s family: ``PointPillarsTracer``, ``CenterPointTracer``,
    ``BEVFormerTracer`` or ``BEVFusionTracer`` (MMDetection3D and OpenPCDet models alike).

    Args:
        model: the 3-D detector (``torch.nn.Module``); its output is returned unchanged.
        model_name, version_name: names the traces are stored under.
        score_thresh, iou_thresh, max_detections_per_frame: the filter applied to the recorded
            detections; by default the model's own (``test_cfg`` / ``POST_PROCESSING``), else
            0.1 / 0.2 / 300. ``iou_thresh`` drives a BEV-IoU NMS for PointPillars only.
        pc_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]``; inferred from the voxel layer or
            the box coder, required for BEVFormer-family models when it cannot be.
        family: the family's name, for a derivative whose classes are not recognised.
        output_mapping: ``callable(output) -> [ {boxes_3d, scores_3d, labels_3d[, velocities]} per frame ]``
            for outputs in no known format (boxes as MMDetection3D box objects or as
            ``[cx, cy, cz, w, l, h, yaw]`` arrays, labels 0-based); also makes unknown models traceable.
        **kwargs: ``label_names``, ``record_features``, ``strict``, ``store`` (see ``Detection3DTracer``).

    Raises:
        ConfigurationError: the family cannot be recognised and no ``output_mapping`` is given;
            ``family`` is not a known family; a BEVFormer-family model without a ``pc_range``.
    """
    if family is not None and family not in TRACERS:
        raise ConfigurationError(f"unknown family {family!r}; expected one of: {', '.join(TRACERS)}")
    family = family or detect_family(model)
    if family is None and output_mapping is None:
        raise ConfigurationError(
            f"cannot tell which 3-D detector family {type(model).__name__} belongs to. Supported families: "
            f"{_families_text()}. If it is one of them, pass family='<name>'; for any other model pass "
            f"output_mapping=callable(output) -> one dict per frame with boxes_3d, scores_3d, labels_3d "
            f"(known output formats: {FORMATS})"
        )
    tracer_class = CustomDetection3DTracer if family is None else TRACERS[family]
    return tracer_class(
        model,
        model_name,
        version_name,
        score_thresh,
        iou_thresh,
        max_detections_per_frame,
        pc_range,
        output_mapping=output_mapping,
        **kwargs,
    )
