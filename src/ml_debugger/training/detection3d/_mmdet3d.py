"""MMDetection3D: running a detector on the reference's inputs, and converting its outputs, data
samples and settings to the tracer's records.

The conversion functions are pure (``Det3DDataSample`` / ``InstanceData`` / box objects in,
numpy dicts in the reference layout out) so an MMEngine hook can reuse them.

Box convention. MMDetection3D LiDAR boxes are ``(x, y, z_bottom, x_size, y_size, z_size, yaw)``
from 1.0 on: ``x_size`` lies along the heading (yaw 0 points along +x). The reference's
``[cx, cy, cz, w, l, h, yaw]`` is the gravity centre, ``w`` across the heading and ``l`` along it
(nuScenes' ``wlh``), so ``w = y_size``, ``l = x_size`` and yaw is unchanged, as MMDetection3D's
own nuScenes export (``output_to_nusc_box``) does. Before 1.0 (BEVFormer's mmdet3d 0.17) the
sizes were ``(w, l, h)`` and the yaw ``-yaw_reference - pi/2``; the installed version decides.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ml_debugger.exceptions import TraceValidationError
from ml_debugger.training.detection3d._points import as_array, frames_of
from ml_debugger.training.detection3d._settings import ModelSettings, as_pc_range, config_value, first

BOX_KEYS = ("boxes_3d", "bboxes_3d")


@functools.cache
def legacy_box_convention() -> bool:
    """Whether the installed MMDetection3D predates 1.0's coordinate refactor ((w, l, h) sizes)."""
    import mmdet3d

    return int(str(mmdet3d.__version__).split(".")[0]) < 1


def is_box_object(value: Any) -> bool:
    """An MMDetection3D box structure (``LiDARInstance3DBoxes`` and its siblings)."""
    return hasattr(value, "gravity_center") and hasattr(value, "tensor")


def boxes_to_reference(boxes: Any, legacy: bool | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(n, 7)`` ``[cx, cy, cz, w, l, h, yaw]`` boxes and, for 9-value boxes, ``(n, 2)``
    velocities of MMDetection3D LiDAR boxes (see the module docstring for the convention)."""
    kind = type(boxes).__name__
    yaw_axis = getattr(boxes, "YAW_AXIS", 2 if kind == "LiDARInstance3DBoxes" else None)  # 0.x boxes lack it
    if yaw_axis != 2:
        raise TraceValidationError(
            f"3-D boxes must be z-up boxes that turn about z (YAW_AXIS 2: LiDARInstance3DBoxes, DepthInstance3DBoxes); "
            f"got {kind} with YAW_AXIS {yaw_axis} (convert camera boxes with .convert_to(Box3DMode.LIDAR, rt_mat))"
        )
    legacy = legacy_box_convention() if legacy is None else legacy
    tensor = boxes.tensor.detach().float().cpu()
    centre = boxes.gravity_center.detach().float().cpu().numpy()
    x_size, y_size, z_size = (tensor[:, i].numpy() for i in (3, 4, 5))
    yaw = tensor[:, 6].numpy()
    if legacy:
        width, length, yaw = x_size, y_size, -yaw - np.pi / 2
    else:
        width, length = y_size, x_size
    out = np.column_stack([centre, width, length, z_size, yaw]).astype(np.float32).reshape(-1, 7)
    velocities = tensor[:, 7:9].numpy().astype(np.float32) if tensor.shape[1] >= 9 else None
    return out, velocities


def frame_to_numpy(item: Mapping[str, Any]) -> dict[str, Any]:
    """A per-frame dict with tensors as numpy and a box object as reference-layout boxes (plus its
    velocities unless the dict has its own); arrays are taken as the reference layout already."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        key = "boxes_3d" if key in BOX_KEYS else key
        if key == "boxes_3d" and is_box_object(value):
            out["boxes_3d"], velocities = boxes_to_reference(value)
            if velocities is not None and item.get("velocities") is None:
                out["velocities"] = velocities
        elif key not in out:
            array = as_array(value)
            out[key] = value if array is None else array
    return out


def _instances(instances: Any) -> dict[str, Any]:
    return frame_to_numpy(dict(instances.items()))


def predictions_from_samples(samples: list[Any]) -> list[dict[str, Any]]:
    """Per-frame ``boxes_3d`` / ``scores_3d`` / ``labels_3d`` (/ ``velocities``) of the
    ``pred_instances_3d`` of MMDetection3D 1.x data samples."""
    return [_instances(sample.pred_instances_3d) for sample in samples]


def predictions_from_results(results: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The same from MMDetection3D 0.x-style result dicts (``pts_bbox`` before ``img_bbox``, or the
    boxes at the top level), as BEVFormer and the 0.x projects return them."""
    frames = []
    for result in results:
        inner = first(result.get("pts_bbox"), result.get("img_bbox"), result)
        frames.append(frame_to_numpy(inner))
    return frames


def targets_from_samples(samples: list[Any]) -> list[dict[str, Any]]:
    """Ground truth of data samples: ``gt_instances_3d`` when it has boxes, else the
    ``eval_ann_info`` that MMDetection3D's test pipelines keep for the evaluator."""
    frames = []
    for i, sample in enumerate(samples):
        instances = getattr(sample, "gt_instances_3d", None)
        if instances is not None and "bboxes_3d" in instances:
            frames.append(_instances(instances))
            continue
        info = getattr(sample, "eval_ann_info", None)
        if not info or "gt_bboxes_3d" not in info:
            raise TraceValidationError(
                f"targets[{i}] is a data sample without gt_instances_3d.bboxes_3d or eval_ann_info"
            )
        frames.append(frame_to_numpy({"boxes_3d": info["gt_bboxes_3d"], "labels_3d": info["gt_labels_3d"]}))
    return frames


def is_data_sample_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(hasattr(v, "metainfo") for v in value)


# --- running a model -------------------------------------------------------------------------


def _lidar_meta() -> dict[str, Any]:
    from mmdet3d.structures import Box3DMode, LiDARInstance3DBoxes

    return {"box_type_3d": LiDARInstance3DBoxes, "box_mode_3d": Box3DMode.LIDAR}


def data_batch(inputs: Any) -> dict[str, Any]:
    """An MMEngine data batch (``inputs`` + ``data_samples``) for ``model.test_step`` from the
    reference's inputs; a data batch passes through unchanged."""
    from mmdet3d.structures import Det3DDataSample

    if isinstance(inputs, Mapping) and "inputs" in inputs:
        return dict(inputs)
    frames = frames_of(inputs)
    source = inputs if isinstance(inputs, Mapping) else {}
    model_inputs: dict[str, Any] = {}
    if frames[0].points is not None:
        clouds = source.get("points", inputs)
        if isinstance(clouds, torch.Tensor):
            clouds = [clouds] if clouds.ndim == 2 else list(clouds)
        model_inputs["points"] = [_single_tensor(c) for c in clouds]
    image = first(source.get("img"), source.get("imgs"))
    if image is not None:
        model_inputs["img"] = list(image) if isinstance(image, torch.Tensor) else [_single_tensor(i) for i in image]
    metas = source.get("img_metas") or [{} for _ in frames]
    if len(metas) == 1 and isinstance(metas[0], (list, tuple)):
        metas = metas[0]
    if len(metas) != len(frames):
        raise TraceValidationError(f"inputs['img_metas'] has {len(metas)} entries for {len(frames)} frames")
    samples = [Det3DDataSample(metainfo={**_lidar_meta(), **dict(meta)}) for meta in metas]
    return {"inputs": model_inputs, "data_samples": samples}


def _single_tensor(value: Any) -> torch.Tensor:
    while isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    value = getattr(value, "tensor", value)
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def _legacy_call(model: nn.Module, inputs: Any) -> Any:
    """MMDetection3D 0.x: ``model(return_loss=False, rescale=True, **data)`` with the per-frame
    lists wrapped in the one-item test-time-augmentation lists ``forward_test`` expects."""
    if not isinstance(inputs, Mapping):
        raise TraceValidationError(
            f"{type(model).__name__} has the MMDetection3D 0.x interface: pass the dict its test DataLoader yields "
            "(img, img_metas and/or points)"
        )
    data = dict(inputs)
    metas = data.get("img_metas")
    if isinstance(metas, (list, tuple)) and metas and isinstance(metas[0], Mapping):  # not yet wrapped
        data["img_metas"] = [metas]
        for key in ("img", "points"):
            if data.get(key) is not None:
                data[key] = [data[key]]
    return model(return_loss=False, rescale=True, **data)


def run(model: nn.Module, inputs: Any) -> Any:
    """The model's own output: ``test_step`` for MMDetection3D 1.x models, the 0.x test call for
    models with ``forward_test``, ``model(**inputs)`` / ``model(inputs)`` for any other module."""
    if hasattr(model, "test_step") and hasattr(model, "data_preprocessor"):
        return model.test_step(data_batch(inputs))
    if hasattr(model, "forward_test"):
        return _legacy_call(model, inputs)
    return model(**inputs) if isinstance(inputs, Mapping) else model(inputs)


frames = frames_of


def carried_targets(inputs: Any) -> list[dict[str, Any]] | None:
    """The ground truth that an MMEngine data batch carries in its data samples, if any."""
    samples = inputs.get("data_samples") if isinstance(inputs, Mapping) else None
    return targets_from_samples(samples) if is_data_sample_list(samples) else None


def carried_ids(inputs: Any) -> list[Any] | None:
    """``sample_idx`` of the data samples of an MMEngine data batch, when every one has it."""
    samples = inputs.get("data_samples") if isinstance(inputs, Mapping) else None
    if not is_data_sample_list(samples):
        return None
    ids = [sample.metainfo.get("sample_idx") for sample in samples]
    return None if any(i is None for i in ids) else ids


# --- settings --------------------------------------------------------------------------------


def box_head(model: nn.Module) -> nn.Module | None:
    return first(getattr(model, "pts_bbox_head", None), getattr(model, "bbox_head", None))


def settings(model: nn.Module) -> ModelSettings:
    """Thresholds from the head's ``test_cfg`` (``score_thr`` / ``score_threshold``, ``nms_thr`` of a
    rotated NMS, ``max_num`` / ``max_per_img``) or its box coder (``score_threshold``, ``max_num``,
    ``num_proposals``); ``pc_range`` from the voxel layer, else a 6-value range of the head."""
    head = box_head(model)
    test_cfg = getattr(head, "test_cfg", None) or getattr(model, "test_cfg", None)
    if isinstance(test_cfg, Mapping) and isinstance(test_cfg.get("pts"), Mapping):
        test_cfg = test_cfg["pts"]
    coder = getattr(head, "bbox_coder", None)
    nms_type = (
        config_value(test_cfg, "nms_type") if isinstance(test_cfg, Mapping) and "nms_type" in test_cfg else "rotate"
    )
    voxel_layers = [
        getattr(getattr(model, "data_preprocessor", None), "voxel_layer", None),
        getattr(model, "pts_voxel_layer", None),
        getattr(model, "voxel_layer", None),
    ]
    pc_range = first(
        *(as_pc_range(getattr(layer, "point_cloud_range", None)) for layer in voxel_layers),
        as_pc_range(getattr(coder, "pc_range", None)),
        as_pc_range(config_value(test_cfg, "pc_range", "point_cloud_range")),
        as_pc_range(config_value(getattr(head, "train_cfg", None), "point_cloud_range", "pc_range")),
    )
    n_classes = getattr(head, "num_classes", None)
    if isinstance(n_classes, (list, tuple)):
        n_classes = sum(n_classes)
    names = getattr(head, "class_names", None)
    if names and isinstance(names[0], (list, tuple)):
        names = [name for task in names for name in task]
    names = names or config_value(getattr(model, "dataset_meta", None), "classes")
    return ModelSettings(
        score_thresh=first(
            config_value(test_cfg, "score_thr", "score_threshold"), getattr(coder, "score_threshold", None)
        ),
        iou_thresh=config_value(test_cfg, "nms_thr") if nms_type == "rotate" else None,
        max_detections=first(
            config_value(test_cfg, "max_num", "max_per_img"),
            getattr(coder, "max_num", None),
            getattr(head, "num_proposals", None),
        ),
        pc_range=pc_range,
        n_classes=None if n_classes is None else int(n_classes),
        label_names=None if not names else tuple(str(n) for n in names),
    )


def bev_source(model: nn.Module) -> tuple[nn.Module, Callable[[Any], list[torch.Tensor]]] | None:
    """The BEV neck (``pts_neck`` or ``neck``) whose output maps cover ``pc_range``."""
    neck = first(getattr(model, "pts_neck", None), getattr(model, "neck", None))
    if neck is None:
        return None
    return neck, lambda output: list(output) if isinstance(output, (list, tuple)) else [output]


def targets_to_numpy(targets: Any) -> Any:
    """Ground truth in either reference format (or as data samples) with tensors as numpy and box
    objects as reference-layout boxes (their velocities added unless given); the shapes are
    checked afterwards by ``tasks.detection3d.targets_from``."""
    if is_data_sample_list(targets):
        return targets_from_samples(list(targets))
    if isinstance(targets, (list, tuple)):
        return [frame_to_numpy(item) if isinstance(item, Mapping) else item for item in targets]
    if not isinstance(targets, Mapping):
        return targets
    out: dict[str, Any] = {}
    for key, value in targets.items():
        name = "boxes_3d" if key in BOX_KEYS else key
        if value is None or as_array(value) is not None or not isinstance(value, (list, tuple)):
            out[name] = value if as_array(value) is None else as_array(value)
            continue
        items = [frame_to_numpy({name: item}) for item in value]
        out[name] = [item[name] for item in items]
        if name == "boxes_3d" and targets.get("velocities") is None and items and all("velocities" in i for i in items):
            out["velocities"] = [item["velocities"] for item in items]
    return out
