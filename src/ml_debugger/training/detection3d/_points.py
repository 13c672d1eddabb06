"""The frames of a 3-D detector's input: each frame's modalities (hashed together into its
``input_hash``), its LiDAR points, and the number of those points inside boxes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ml_debugger.core import hash_samples
from ml_debugger.exceptions import TraceValidationError
from ml_debugger.training._torch import to_numpy

#: Keys of an input dict that describe a frame rather than hold one of its modalities.
METADATA_KEYS = frozenset({"img_metas", "metas", "data_samples", "batch_input_metas"})
INPUT_FORMS = (
    "a point tensor (N, 4+) for one frame, (B, N, 4+) or a list of (N_i, 4+) tensors for a batch, or a dict "
    "with 'points' and/or 'img' (and 'img_metas') as MMDetection3D takes it"
)
#: Width of the columns of points binned together when counting points in boxes (metres).
CELL = 2.0
#: Candidate (point, box) pairs tested at once when counting points in boxes.
PAIRS_PER_CHUNK = 1 << 21


@dataclass(frozen=True)
class Frame:
    """One frame of the input: its modalities in a fixed order and its LiDAR points ``(N, C >= 3)``."""

    modalities: tuple[tuple[str, np.ndarray], ...]
    points: np.ndarray | None


def as_array(value: Any) -> np.ndarray | None:
    """A numpy array of a tensor, array or MMDetection3D points object (``.tensor``), else None."""
    value = getattr(value, "tensor", value)  # mmdet3d BasePoints keep their data in .tensor
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return to_numpy(value)
    return None


def _single(value: Any) -> Any:
    """Unwrap the one-item lists that test-time-augmentation collates put around a frame's data."""
    while isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    return value


def _per_frame(value: Any, batch: int, key: str) -> list[np.ndarray]:
    array = as_array(value)
    if array is not None:
        if array.ndim == 0 or len(array) != batch:
            raise TraceValidationError(
                f"inputs[{key!r}] has shape {array.shape}; expected a leading dimension of {batch} frames"
            )
        return list(array)
    if isinstance(value, (list, tuple)):
        if len(value) == 1 and batch != 1:  # [batch] wrapped in a test-time-augmentation list
            return _per_frame(value[0], batch, key)
        if len(value) == batch:
            arrays = [as_array(_single(item)) for item in value]
            if all(a is not None for a in arrays):
                return arrays
    raise TraceValidationError(f"inputs[{key!r}] must hold one tensor per frame ({batch} frames); got {type(value).__name__}")


def _batch_size(inputs: Mapping[str, Any]) -> int:
    for key in ("points", "img_metas", "data_samples", "img", "imgs"):
        value = inputs.get(key)
        if value is None:
            continue
        array = as_array(value)
        if array is not None:
            return 1 if key == "points" and array.ndim == 2 else len(array)
        if isinstance(value, (list, tuple)):
            return len(value[0]) if len(value) == 1 and isinstance(value[0], (list, tuple)) else len(value)
    raise TraceValidationError(f"cannot find the frames in an input dict with keys {sorted(map(str, inputs))}; pass {INPUT_FORMS}")


def _frames_of_dict(inputs: Mapping[str, Any]) -> list[Frame]:
    if isinstance(inputs.get("inputs"), Mapping):  # an MMDetection3D 1.x data batch: inputs + data_samples
        return _frames_of_dict(inputs["inputs"])
    batch = _batch_size(inputs)
    keys = sorted(k for k in inputs if k not in METADATA_KEYS and inputs[k] is not None)
    per_key: dict[str, list[np.ndarray]] = {}
    for key in keys:
        value = inputs[key]
        if key == "points" and as_array(value) is not None and as_array(value).ndim == 2:
            value = [value]
        if as_array(value) is None and not isinstance(value, (list, tuple)):
            continue  # a setting (e.g. return_loss=False), not a modality
        per_key[key] = _per_frame(value, batch, key)
    if not per_key:
        raise TraceValidationError(f"the input dict has no points or images (keys {sorted(map(str, inputs))}); pass {INPUT_FORMS}")
    points = per_key.get("points")
    return [
        Frame(tuple((key, arrays[i]) for key, arrays in per_key.items()), None if points is None else points[i])
        for i in range(batch)
    ]


def frames_of(inputs: Any) -> list[Frame]:
    """The frames of a model input in one of the reference's forms (see ``INPUT_FORMS``)."""
    if isinstance(inputs, Mapping):
        frames = _frames_of_dict(inputs)
    else:
        array = as_array(inputs)
        if array is not None and array.ndim == 2:
            clouds = [array]
        elif array is not None and array.ndim == 3:
            clouds = list(array)
        elif isinstance(inputs, (list, tuple)) and inputs and all(as_array(p) is not None for p in inputs):
            clouds = [as_array(p) for p in inputs]
        else:
            shape = getattr(array, "shape", None)
            raise TraceValidationError(f"cannot read frames from inputs of type {type(inputs).__name__} {shape or ''}; pass {INPUT_FORMS}")
        frames = [Frame((("points", cloud),), cloud) for cloud in clouds]
    for i, frame in enumerate(frames):
        if frame.points is not None and (frame.points.ndim != 2 or frame.points.shape[1] < 3):
            raise TraceValidationError(f"the points of frame {i} must have shape (N, 3+) as [x, y, z, ...]; got {frame.points.shape}")
    return frames


def hash_frames(frames: Sequence[Frame]) -> np.ndarray:
    """One xxh3-128 digest per frame over every modality of the frame (dtype, shape and bytes)."""
    digests = np.empty(len(frames), dtype=object)
    for i, frame in enumerate(frames):
        digests[i] = hash_samples([array[None] for _, array in frame.modalities])[0]
    return digests


def _candidate_runs(xyz: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of points near each box: ``order`` (indices of the points in cells that some box
    touches, sorted by cell) and ``(run_box, start, length)`` into it for every column of cells
    that a box's axis-aligned extent touches."""
    cos, sin = np.abs(np.cos(boxes[:, 6])), np.abs(np.sin(boxes[:, 6]))
    half_w, half_l = boxes[:, 3] / 2, boxes[:, 4] / 2
    extent = np.stack([half_l * cos + half_w * sin, half_l * sin + half_w * cos], axis=1)
    origin = (boxes[:, :2] - extent).min(axis=0) - CELL  # cell 0 of each axis lies outside every box
    low = np.floor((boxes[:, :2] - extent - origin) / CELL).astype(np.int64)
    high = np.floor((boxes[:, :2] + extent - origin) / CELL).astype(np.int64)
    nx, ny = high.max(axis=0) + 2
    columns = high[:, 0] - low[:, 0] + 1
    run_box = np.repeat(np.arange(len(boxes)), columns)
    run_column = low[run_box, 0] + np.arange(len(run_box)) - np.repeat(np.cumsum(columns) - columns, columns)
    run_low, run_high = run_column * ny + low[run_box, 1], run_column * ny + high[run_box, 1]
    touched = np.zeros(nx * ny + 1, dtype=np.int32)  # only points in cells that some box touches are sorted
    np.add.at(touched, run_low, 1)
    np.add.at(touched, run_high + 1, -1)
    touched = np.cumsum(touched[:-1]) > 0
    # Points outside the boxes' extent (and NaN) are clipped into the untouched border cells.
    cells = np.floor((xyz[:, :2] - origin.astype(np.float32)) * np.float32(1.0 / CELL))
    cells = np.fmax(np.fmin(cells, [nx - 1, ny - 1], out=cells), 0, out=cells).astype(np.int64)  # fmin/fmax drop NaN
    keys = cells[:, 0] * ny + cells[:, 1]
    order = np.flatnonzero(touched[keys])
    order = order[np.argsort(keys[order])]
    sorted_keys = keys[order]
    start = np.searchsorted(sorted_keys, run_low, side="left")
    stop = np.searchsorted(sorted_keys, run_high, side="right")
    return order, run_box, start, stop - start


def _inside(xyz: np.ndarray, box: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Whether ``xyz[i]`` lies in box ``box[i]``; ``frames`` rows are ``[cx, cy, cz, cos, sin, w/2, l/2, h/2]``."""
    f = frames[box]
    dx, dy = xyz[:, 0] - f[:, 0], xyz[:, 1] - f[:, 1]
    along = dx * f[:, 3] + dy * f[:, 4]
    across = dy * f[:, 3] - dx * f[:, 4]
    return (np.abs(along) < f[:, 6]) & (np.abs(across) < f[:, 5]) & (np.abs(xyz[:, 2] - f[:, 2]) <= f[:, 7])


def count_points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(m,)`` int32: how many of ``points`` ``(N, 3+)`` lie in each ``[cx, cy, cz, w, l, h, yaw]`` box.

    A point is inside when, in the box's frame, ``|along| < l/2``, ``|across| < w/2`` and
    ``|dz| <= h/2`` (the test of MMCV's ``points_in_boxes``). Points are binned into columns of
    ``CELL`` metres so each box is tested only against the points near it.
    """
    counts = np.zeros(len(boxes), dtype=np.int64)
    xyz = np.asarray(points)[:, :3]
    if len(boxes) == 0 or len(xyz) == 0:
        return counts.astype(np.int32)
    boxes = np.asarray(boxes, dtype=np.float64)
    frames = np.column_stack([boxes[:, :3], np.cos(boxes[:, 6]), np.sin(boxes[:, 6]), boxes[:, 3:6] / 2])
    order, run_box, start, lengths = _candidate_runs(xyz, boxes)
    ends = np.cumsum(lengths)
    first = 0
    while first < len(run_box):  # runs in chunks of about PAIRS_PER_CHUNK candidate pairs
        last = max(int(np.searchsorted(ends, ends[first] - lengths[first] + PAIRS_PER_CHUNK, side="right")), first + 1)
        n = lengths[first:last]
        pair_box = np.repeat(run_box[first:last], n)
        within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        pair_point = order[np.repeat(start[first:last], n) + within]
        inside = _inside(xyz[pair_point].astype(np.float64), pair_box, frames)
        counts += np.bincount(pair_box[inside], minlength=len(boxes))
        first = last
    return counts.astype(np.int32)
