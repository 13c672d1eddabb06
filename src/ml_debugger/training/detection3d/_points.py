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
#: Width of the cells of points binned together when counting points in boxes (metres), at least.
CELL = 2.0
#: Cells per axis at most (boxes spread wider get wider cells).
MAX_CELLS_PER_AXIS = 1024
#: Candidate (point, box) pairs tested at once when counting points in boxes.
PAIRS_PER_CHUNK = 1 << 21


@dataclass(frozen=True)
class Frame:
    """One frame of the input: its modalities in a fixed order (numpy, for the hash) and its
    LiDAR points ``(N, C >= 3)`` as a tensor on the input's device (for the counts)."""

    modalities: tuple[tuple[str, np.ndarray], ...]
    points: torch.Tensor | None


def _raw(value: Any) -> torch.Tensor | np.ndarray | None:
    """The tensor or array of a value (MMDetection3D points objects keep theirs in ``.tensor``)."""
    value = getattr(value, "tensor", value)
    return value if isinstance(value, (torch.Tensor, np.ndarray)) else None


def as_array(value: Any) -> np.ndarray | None:
    """A numpy array of a tensor, array or MMDetection3D points object, else None."""
    raw = _raw(value)
    return None if raw is None else to_numpy(raw)


def as_points(value: torch.Tensor | np.ndarray) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))


def _single(value: Any) -> Any:
    """Unwrap the one-item lists that test-time-augmentation collates put around a frame's data."""
    while isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    return value


def _per_frame(value: Any, batch: int, key: str) -> list[torch.Tensor | np.ndarray]:
    raw = _raw(value)
    if raw is not None:
        if raw.ndim == 0 or len(raw) != batch:
            raise TraceValidationError(
                f"inputs[{key!r}] has shape {tuple(raw.shape)}; expected a leading dimension of {batch} frames"
            )
        return list(raw)
    if isinstance(value, (list, tuple)):
        if len(value) == 1 and batch != 1:  # [batch] wrapped in a test-time-augmentation list
            return _per_frame(value[0], batch, key)
        if len(value) == batch:
            items = [_raw(_single(item)) for item in value]
            if all(item is not None for item in items):
                return items
    raise TraceValidationError(
        f"inputs[{key!r}] must hold one tensor per frame ({batch} frames); got {type(value).__name__}"
    )


def _batch_size(inputs: Mapping[str, Any]) -> int:
    for key in ("points", "img_metas", "data_samples", "img", "imgs"):
        value = inputs.get(key)
        if value is None:
            continue
        raw = _raw(value)
        if raw is not None:
            return 1 if key == "points" and raw.ndim == 2 else len(raw)
        if isinstance(value, (list, tuple)):
            return len(value[0]) if len(value) == 1 and isinstance(value[0], (list, tuple)) else len(value)
    raise TraceValidationError(
        f"cannot find the frames in an input dict with keys {sorted(map(str, inputs))}; pass {INPUT_FORMS}"
    )


def _frames_of_dict(inputs: Mapping[str, Any]) -> list[Frame]:
    if isinstance(inputs.get("inputs"), Mapping):  # an MMDetection3D 1.x data batch: inputs + data_samples
        return _frames_of_dict(inputs["inputs"])
    batch = _batch_size(inputs)
    keys = sorted(k for k in inputs if k not in METADATA_KEYS and inputs[k] is not None)
    per_key: dict[str, list[torch.Tensor | np.ndarray]] = {}
    for key in keys:
        value = inputs[key]
        if key == "points" and _raw(value) is not None and _raw(value).ndim == 2:
            value = [value]
        if _raw(value) is None and not isinstance(value, (list, tuple)):
            continue  # a setting (e.g. return_loss=False), not a modality
        per_key[key] = _per_frame(value, batch, key)
    if not per_key:
        raise TraceValidationError(
            f"the input dict has no points or images (keys {sorted(map(str, inputs))}); pass {INPUT_FORMS}"
        )
    points = per_key.get("points")
    return [
        Frame(
            tuple((key, to_numpy(items[i])) for key, items in per_key.items()),
            None if points is None else as_points(points[i]),
        )
        for i in range(batch)
    ]


def frames_of(inputs: Any) -> list[Frame]:
    """The frames of a model input in one of the reference's forms (see ``INPUT_FORMS``)."""
    if isinstance(inputs, Mapping):
        frames = _frames_of_dict(inputs)
    else:
        raw = _raw(inputs)
        if raw is not None and raw.ndim == 2:
            clouds = [raw]
        elif raw is not None and raw.ndim == 3:
            clouds = list(raw)
        elif isinstance(inputs, (list, tuple)) and inputs and all(_raw(p) is not None for p in inputs):
            clouds = [_raw(p) for p in inputs]
        else:
            shape = tuple(getattr(raw, "shape", ()))
            raise TraceValidationError(
                f"cannot read frames from inputs of type {type(inputs).__name__} {shape or ''}; pass {INPUT_FORMS}"
            )
        frames = [Frame((("points", to_numpy(cloud)),), as_points(cloud)) for cloud in clouds]
    for i, frame in enumerate(frames):
        if frame.points is not None and (frame.points.ndim != 2 or frame.points.shape[1] < 3):
            raise TraceValidationError(
                f"the points of frame {i} must have shape (N, 3+) as [x, y, z, ...]; got {tuple(frame.points.shape)}"
            )
    return frames


def hash_frames(frames: Sequence[Frame]) -> np.ndarray:
    """One xxh3-128 digest per frame over every modality of the frame (dtype, shape and bytes)."""
    digests = np.empty(len(frames), dtype=object)
    for i, frame in enumerate(frames):
        digests[i] = hash_samples([array[None] for _, array in frame.modalities])[0]
    return digests


def _box_cells(boxes: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """The grid of cells around the boxes and, for every column of cells that a box's
    axis-aligned extent touches, its ``(box, first key, last key)``: ``(cell, origin, runs, touched,
    nx, ny)``, where ``touched`` marks the cells some box touches and cell 0 of each axis none."""
    cos, sin = np.abs(np.cos(boxes[:, 6])), np.abs(np.sin(boxes[:, 6]))
    half_w, half_l = boxes[:, 3] / 2, boxes[:, 4] / 2
    extent = np.stack([half_l * cos + half_w * sin, half_l * sin + half_w * cos], axis=1)
    low_corner, high_corner = boxes[:, :2] - extent, boxes[:, :2] + extent
    cell = max(CELL, float((high_corner.max(axis=0) - low_corner.min(axis=0)).max()) / MAX_CELLS_PER_AXIS)
    origin = low_corner.min(axis=0) - cell
    low = np.floor((low_corner - origin) / cell).astype(np.int64)
    high = np.floor((high_corner - origin) / cell).astype(np.int64)
    nx, ny = (int(v) for v in high.max(axis=0) + 2)
    columns = high[:, 0] - low[:, 0] + 1
    run_box = np.repeat(np.arange(len(boxes)), columns)
    run_column = low[run_box, 0] + np.arange(len(run_box)) - np.repeat(np.cumsum(columns) - columns, columns)
    runs = np.stack([run_box, run_column * ny + low[run_box, 1], run_column * ny + high[run_box, 1]], axis=1)
    touched = np.zeros(nx * ny + 1, dtype=np.int32)
    np.add.at(touched, runs[:, 1], 1)
    np.add.at(touched, runs[:, 2] + 1, -1)
    return cell, origin, runs, np.cumsum(touched[:-1]) > 0, nx, ny


def _inside(points: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Whether ``points[i]`` lies in the box of ``frames[i]`` = ``[cx, cy, cz, cos, sin, w/2, l/2, h/2]``."""
    dx, dy = points[:, 0] - frames[:, 0], points[:, 1] - frames[:, 1]
    along = dx * frames[:, 3] + dy * frames[:, 4]
    across = dy * frames[:, 3] - dx * frames[:, 4]
    return (
        (along.abs() < frames[:, 6])
        & (across.abs() < frames[:, 5])
        & ((points[:, 2] - frames[:, 2]).abs() <= frames[:, 7])
    )


@torch.no_grad()
def count_points_in_boxes(points: torch.Tensor | np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(m,)`` int32: how many of ``points`` ``(N, 3+)`` lie in each ``[cx, cy, cz, w, l, h, yaw]`` box.

    A point is inside when, in the box's frame, ``|along| < l/2``, ``|across| < w/2`` and
    ``|dz| <= h/2`` (the test of MMCV's ``points_in_boxes``, in float32 as there). It runs on the
    points' device: the points are binned into cells of ``CELL`` metres (sorted by cell), so each
    box is tested only against the points in the cells it touches.
    """
    xyz = as_points(points)[:, :3]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    if len(boxes) == 0 or len(xyz) == 0:
        return np.zeros(len(boxes), dtype=np.int32)
    cell, origin, runs, touched, nx, ny = _box_cells(boxes)
    device = xyz.device
    # Points outside the boxes' extent are clipped into the untouched border cells (NaN into cell 0).
    cells = torch.nan_to_num(
        (xyz[:, :2].float() - torch.tensor(origin, dtype=torch.float32, device=device)) / cell, nan=-1.0
    )
    cells = torch.minimum(cells.clamp_(min=0), torch.tensor([nx - 1, ny - 1], dtype=torch.float32, device=device)).int()
    keys = cells[:, 0] * ny + cells[:, 1]  # int32: at most MAX_CELLS_PER_AXIS + 2 cells per axis
    order = torch.nonzero(torch.from_numpy(touched).to(device).index_select(0, keys)).squeeze(1)
    sorted_keys, by_key = torch.sort(keys.index_select(0, order))
    order = order.index_select(0, by_key)
    runs_t = torch.from_numpy(runs).to(device)
    bounds = torch.from_numpy(runs[:, 1:].astype(np.int32).T.copy()).to(device)
    start = torch.searchsorted(sorted_keys, bounds[0])
    lengths = (torch.searchsorted(sorted_keys, bounds[1], right=True) - start).cpu().numpy()
    candidates = xyz.index_select(0, order).float()
    frames = torch.tensor(
        np.column_stack([boxes[:, :3], np.cos(boxes[:, 6]), np.sin(boxes[:, 6]), boxes[:, 3:6] / 2]),
        dtype=torch.float32,
        device=device,
    )
    counts = torch.zeros(len(boxes), dtype=torch.int64, device=device)
    ends = np.cumsum(lengths)
    first = 0
    while first < len(runs):  # runs in chunks of about PAIRS_PER_CHUNK candidate pairs
        last = max(int(np.searchsorted(ends, ends[first] - lengths[first] + PAIRS_PER_CHUNK, side="right")), first + 1)
        n = torch.from_numpy(lengths[first:last]).to(device)
        offsets = torch.cumsum(n, 0) - n
        positions = torch.repeat_interleave(start[first:last] - offsets, n) + torch.arange(int(n.sum()), device=device)
        box = torch.repeat_interleave(runs_t[first:last, 0], n)
        inside = _inside(candidates.index_select(0, positions), frames.index_select(0, box))
        counts += torch.bincount(box[inside], minlength=len(boxes))
        first = last
    return counts.cpu().numpy().astype(np.int32)
