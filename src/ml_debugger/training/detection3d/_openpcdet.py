"""OpenPCDet: its detectors (``Detector3DTemplate`` subclasses) and their output format.

In evaluation mode an OpenPCDet detector takes a ``batch_dict`` and returns
``(pred_dicts, recall_dict)``; each pred dict has ``pred_boxes`` ``(n, 7)`` or ``(n, 9)``
``[x, y, z, dx, dy, dz, heading(, vx, vy)]`` (gravity centre, ``dx`` along the heading),
``pred_scores`` and 1-based ``pred_labels``. The reference's ``[cx, cy, cz, w, l, h, yaw]`` is
``[x, y, z, dy, dx, dz, heading]`` and its labels are 0-based. OpenPCDet is not imported: models
and outputs are recognised by their structure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ml_debugger.exceptions import TraceValidationError
from ml_debugger.training._torch import to_numpy
from ml_debugger.training.detection3d._points import Frame, as_array, as_points, frames_of
from ml_debugger.training.detection3d._settings import ModelSettings, as_pc_range, config_value, first

IMAGE_KEYS = ("camera_imgs", "images")


def is_model(model: nn.Module) -> bool:
    """An OpenPCDet detector: ``model_cfg`` and ``module_list`` as ``Detector3DTemplate`` builds them."""
    return hasattr(model, "model_cfg") and hasattr(model, "module_list")


def is_output(output: Any) -> bool:
    """``(pred_dicts, recall_dict)`` or a list of pred dicts with ``pred_boxes``."""
    if isinstance(output, tuple) and len(output) == 2 and isinstance(output[1], Mapping):
        output = output[0]
    return (
        isinstance(output, (list, tuple))
        and bool(output)
        and all(isinstance(item, Mapping) and "pred_boxes" in item for item in output)
    )


def pred_boxes_to_reference(boxes: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``[x, y, z, dx, dy, dz, heading(, vx, vy)]`` -> ``[cx, cy, cz, w, l, h, yaw]`` and velocities."""
    converted = as_array(boxes)
    array = np.asarray(boxes if converted is None else converted, dtype=np.float32)
    if array.size == 0 and array.ndim != 2:
        array = array.reshape(0, 7)
    if array.ndim != 2 or array.shape[1] < 7:
        raise TraceValidationError(
            f"OpenPCDet boxes must have shape (n, 7+) as [x, y, z, dx, dy, dz, heading, ...]; got {array.shape}"
        )
    out = array[:, [0, 1, 2, 4, 3, 5, 6]]
    return np.ascontiguousarray(out), (np.ascontiguousarray(array[:, 7:9]) if array.shape[1] >= 9 else None)


def predictions_from_pred_dicts(output: Any) -> list[dict[str, Any]]:
    """Per-frame ``boxes_3d`` / ``scores_3d`` / 0-based ``labels_3d`` (/ ``velocities``)."""
    pred_dicts = (
        output[0] if isinstance(output, tuple) and len(output) == 2 and isinstance(output[1], Mapping) else output
    )
    frames = []
    for i, item in enumerate(pred_dicts):
        boxes, velocities = pred_boxes_to_reference(item["pred_boxes"])
        labels = np.asarray(as_array(item["pred_labels"])).reshape(-1).astype(np.int64)
        if len(labels) and labels.min() < 1:
            raise TraceValidationError(
                f"pred_dicts[{i}]['pred_labels'] must be 1-based as OpenPCDet's are; got {labels.min()}"
            )
        frame = {"boxes_3d": boxes, "scores_3d": as_array(item["pred_scores"]), "labels_3d": labels - 1}
        if velocities is not None:
            frame["velocities"] = velocities
        frames.append(frame)
    return frames


def frames(inputs: Any) -> list[Frame]:
    """Frames of an OpenPCDet ``batch_dict`` (points ``(M, 1 + C)`` with the batch index first,
    camera images) or of the reference's point tensors."""
    if not (isinstance(inputs, Mapping) and "batch_size" in inputs):
        return frames_of(inputs)
    if "points" not in inputs:
        raise TraceValidationError(f"an OpenPCDet batch_dict needs 'points' and 'batch_size'; it has {sorted(inputs)}")
    points = as_points(inputs["points"])
    if points.ndim != 2 or points.shape[1] < 4:
        raise TraceValidationError(
            "batch_dict['points'] must have shape (N, 1 + 3+) as [batch_index, x, y, z, ...]; "
            f"got {tuple(points.shape)}"
        )
    index = points[:, 0].long()
    clouds = [points[index == b, 1:] for b in range(int(inputs["batch_size"]))]
    images = {key: as_array(inputs[key]) for key in IMAGE_KEYS if as_array(inputs.get(key)) is not None}
    return [
        Frame((("points", to_numpy(cloud)), *((key, image[b]) for key, image in images.items())), cloud)
        for b, cloud in enumerate(clouds)
    ]


def batch_dict(inputs: Any) -> dict[str, Any]:
    """The ``batch_dict`` to call the model with: passed through, or built from point tensors as
    ``{'points': (M, 1 + C) with the batch index first, 'batch_size': B}`` (enough for models that
    voxelise inside the network, e.g. dynamic pillar VFEs)."""
    if isinstance(inputs, Mapping):
        return inputs  # OpenPCDet's modules add their results to the caller's dict
    clouds = [inputs] if isinstance(inputs, torch.Tensor) and inputs.ndim == 2 else list(inputs)
    points = torch.cat([torch.nn.functional.pad(c, (1, 0), value=float(b)) for b, c in enumerate(clouds)])
    return {"points": points, "batch_size": len(clouds)}


def run(model: nn.Module, inputs: Any) -> Any:
    return model(batch_dict(inputs))


def carried_targets(inputs: Any) -> list[dict[str, Any]] | None:
    """Ground truth of a ``batch_dict``: ``gt_boxes`` ``(B, M, 8 or 10)`` ``[x, y, z, dx, dy, dz,
    heading(, vx, vy), label]`` padded with zero rows, labels 1-based."""
    if not isinstance(inputs, Mapping) or inputs.get("gt_boxes") is None:
        return None
    frames = []
    for rows in as_array(inputs["gt_boxes"]):
        rows = rows[np.any(rows != 0, axis=1)]
        boxes, velocities = pred_boxes_to_reference(rows[:, :-1])
        frame = {"boxes_3d": boxes, "labels_3d": rows[:, -1].astype(np.int64) - 1}
        if velocities is not None:
            frame["velocities"] = velocities
        frames.append(frame)
    return frames


def carried_ids(inputs: Any) -> list[Any] | None:
    ids = inputs.get("frame_id") if isinstance(inputs, Mapping) else None
    return None if ids is None else list(np.asarray(ids).reshape(-1))


def settings(model: nn.Module) -> ModelSettings:
    """``SCORE_THRESH``, ``NMS_CONFIG.NMS_THRESH`` and the detection limit from the dense head's
    ``POST_PROCESSING`` (centre heads) or the model's; ``pc_range`` from the dataset."""
    cfg = model.model_cfg
    head_post = config_value(config_value(cfg, "DENSE_HEAD"), "POST_PROCESSING")
    model_post = config_value(cfg, "POST_PROCESSING")
    nms = first(config_value(head_post, "NMS_CONFIG"), config_value(model_post, "NMS_CONFIG"))
    pc_range = first(
        as_pc_range(getattr(getattr(model, "dataset", None), "point_cloud_range", None)),
        as_pc_range(getattr(getattr(model, "dense_head", None), "point_cloud_range", None)),
    )
    names = getattr(model, "class_names", None)
    return ModelSettings(
        score_thresh=first(config_value(head_post, "SCORE_THRESH"), config_value(model_post, "SCORE_THRESH")),
        iou_thresh=config_value(nms, "NMS_THRESH"),
        max_detections=first(config_value(head_post, "MAX_OBJ_PER_SAMPLE"), config_value(nms, "NMS_POST_MAXSIZE")),
        pc_range=pc_range,
        n_classes=getattr(model, "num_class", None),
        label_names=None if not names else tuple(str(n) for n in names),
    )


def bev_source(model: nn.Module) -> tuple[nn.Module, Callable[[Any], list[torch.Tensor]]] | None:
    """``backbone_2d``, whose output batch_dict holds the BEV map ``spatial_features_2d``."""
    module = getattr(model, "backbone_2d", None)
    if module is None:
        return None
    return module, lambda output: [output["spatial_features_2d"]]
