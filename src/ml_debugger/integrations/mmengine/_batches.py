"""Reading MMEngine data batches and data samples: the task they belong to, a subset of their
samples, and the ids their metainfo gives."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ml_debugger.exceptions import TraceValidationError

#: Metainfo keys that name a sample, in order of preference, per task.
ID_KEYS = {"detection3d": ("sample_idx", "lidar_path"), "detection2d": ("img_id", "img_path")}


def _is_3d(sample: Any) -> bool:
    if "pred_instances_3d" in sample:
        return True
    gt = getattr(sample, "gt_instances_3d", None)
    info = getattr(sample, "eval_ann_info", None)
    return (gt is not None and "bboxes_3d" in gt) or (isinstance(info, Mapping) and "gt_bboxes_3d" in info)


def task_of(samples: Sequence[Any] | None, *, required: bool = False) -> str | None:
    """``"detection3d"`` for data samples with 3-D predictions or ground truth, ``"detection2d"``
    for ones with ``pred_instances`` / ``gt_instances``; None (or an error when ``required``) else."""
    if isinstance(samples, Sequence) and samples and all(hasattr(s, "metainfo") for s in samples):
        first = samples[0]
        if _is_3d(first):
            return "detection3d"
        if "pred_instances" in first or "gt_instances" in first:
            return "detection2d"
    if not required:
        return None
    kind = type(samples[0]).__name__ if isinstance(samples, Sequence) and samples else type(samples).__name__
    raise TraceValidationError(
        f"cannot tell the task from the model's outputs ({kind}); expected data samples with pred_instances_3d "
        "(3-D detection) or pred_instances (2-D detection); pass task='detection3d' or task='detection2d'"
    )


def sample_ids(samples: Sequence[Any], task: str, indices: np.ndarray | None) -> list[Any] | None:
    """Each sample's id from its metainfo (``ID_KEYS``), else its dataset index, else None (hashes)."""
    for key in ID_KEYS[task]:
        ids = [sample.metainfo.get(key) for sample in samples]
        if all(i is not None for i in ids):
            return ids
    return None if indices is None else indices.tolist()


def _take(value: Any, keep: np.ndarray) -> Any:
    """The kept items of a per-sample list or a batch tensor; anything else unchanged."""
    if isinstance(value, (list, tuple)) and len(value) == len(keep):
        return [item for item, k in zip(value, keep) if k]
    if isinstance(value, torch.Tensor) and value.ndim > 0 and len(value) == len(keep):
        return value[torch.from_numpy(keep)]
    if isinstance(value, Mapping):
        return {key: _take(item, keep) for key, item in value.items()}
    return value


def subset(data_batch: Any, outputs: Sequence[Any], keep: np.ndarray) -> tuple[Any, list[Any]]:
    """``data_batch`` and ``outputs`` with only the samples ``keep`` marks (per-sample lists and
    batch tensors of the inputs and the data samples)."""
    if len(outputs) != len(keep):
        raise TraceValidationError(f"the model returned {len(outputs)} data samples for a batch of {len(keep)}")
    return _take(data_batch, keep), [sample for sample, k in zip(outputs, keep) if k]
