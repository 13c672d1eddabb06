"""One Ultralytics validation batch as 2-D detection rows: predictions after the validator's NMS and
the ground truth it matched against, both moved from the letterboxed input back to original-image
pixels, with ids, hashes of the image files and neck features.

What this reads of a ``DetectionValidator`` batch (Ultralytics 8.1 and newer): ``img`` (the
letterboxed ``(B, 3, h, w)`` input), ``batch_idx``/``cls``/``bboxes`` (ground truth, xywh
normalised to ``img``), ``ori_shape`` (``(height, width)`` of each file), ``ratio_pad``
(``((gain_h, gain_w), (pad_w, pad_h))``) and ``im_file``. Predictions are per-image dicts with
``bboxes``/``conf``/``cls`` (8.3.x and newer) or ``(n, 6)`` tensors ``x1, y1, x2, y2, conf, cls``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ml_debugger.core import hash_samples
from ml_debugger.core.previews import encode_previews
from ml_debugger.exceptions import TraceValidationError
from ml_debugger.tasks._columns import Thresholds
from ml_debugger.tasks.detection2d import DetectionBatch, make_detection_batch, predictions_from, targets_from
from ml_debugger.training.detection._features import half_numpy, pooled
from ml_debugger.training.detection._ultralytics import Letterbox

BATCH_KEYS = ("img", "batch_idx", "cls", "bboxes", "ori_shape", "ratio_pad", "im_file")


def letterbox_of(ratio_pad: Any, ori_shape: Sequence[int], input_shape: Sequence[int]) -> Letterbox:
    """How one image was letterboxed, from its ``ratio_pad`` (``((gain_h, gain_w), (pad_w, pad_h))``;
    a single gain in older versions), or computed from the shapes as ``ops.scale_boxes`` does without it."""
    height, width = (int(v) for v in ori_shape[:2])
    if ratio_pad is None:
        gain = min(input_shape[0] / height, input_shape[1] / width)
        new_h, new_w = max(round(height * gain), 1), max(round(width * gain), 1)
        pad_x = round((input_shape[1] - new_w) / 2 - 0.1)
        pad_y = round((input_shape[0] - new_h) / 2 - 0.1)
        return Letterbox(new_w / width, new_h / height, pad_x, pad_y)
    gains, pads = ratio_pad
    gains = np.atleast_1d(np.asarray(gains, dtype=np.float64))
    gain_y, gain_x = (gains[0], gains[0]) if len(gains) == 1 else (gains[0], gains[1])
    return Letterbox(float(gain_x), float(gain_y), float(pads[0]), float(pads[1]))


def undo_letterbox(boxes: np.ndarray, box: Letterbox, ori_shape: Sequence[int]) -> np.ndarray:
    """``(n, 4)`` xyxy boxes in the letterboxed input moved to original-image pixels and clipped to
    the image, as ``ops.scale_boxes(input_shape, boxes, ori_shape, ratio_pad)`` does."""
    height, width = (float(v) for v in ori_shape[:2])
    gain = np.array([box.gain_x, box.gain_y, box.gain_x, box.gain_y])
    pad = np.array([box.pad_x, box.pad_y, box.pad_x, box.pad_y])
    out = (np.asarray(boxes, np.float64).reshape(-1, 4) - pad) / gain
    return np.clip(out, 0, [width, height, width, height]).astype(np.float32)


@functools.lru_cache(maxsize=1 << 16)
def image_id(path: str, root: Path | None) -> str:
    """The image file relative to the dataset root (POSIX separators), else the path as given (cached:
    a pure function of its arguments, called for every image of every validation)."""
    if root is not None:
        try:
            return Path(os.path.abspath(path)).relative_to(root).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


class FileHashes:
    """Content hashes of image files, read once per file version (path, size, modification time)."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[tuple[int, int], str]] = {}

    def __call__(self, path: str) -> str:
        stat = os.stat(path)
        version = (stat.st_size, stat.st_mtime_ns)
        known = self._known.get(path)
        if known is not None and known[0] == version:
            return known[1]
        data = np.frombuffer(Path(path).read_bytes(), dtype=np.uint8)
        digest = str(hash_samples([data[None]])[0])
        self._known[path] = (version, digest)
        return digest


def features_at_centres(
    maps: Sequence[torch.Tensor], boxes: Sequence[np.ndarray], size: tuple[int, int]
) -> list[np.ndarray]:
    """Per image ``(n_i, sum of channels)`` float16 features: every level of ``maps`` (``(B, C, h, w)``
    over an input of ``size`` (h, w)) bilinearly sampled at the centres of that image's xyxy
    ``boxes``. The same values as ``_features.sample_at_centres(..., by_level=False)`` image by
    image, in one ``grid_sample`` per level for the whole batch (the per-image calls cost more
    than the rest of the tracing on small images)."""
    counts = [len(b) for b in boxes]
    width = sum(int(m.shape[1]) for m in maps)
    if not any(counts):
        return [np.zeros((0, width), np.float16) for _ in counts]
    grid = np.zeros((len(boxes), 1, max(counts), 2), np.float32)
    scale = np.array([size[1], size[0]], np.float32)
    for i, b in enumerate(boxes):
        centres = (b[:, :2] + b[:, 2:]) / 2
        grid[i, 0, : len(b)] = centres / scale * 2 - 1
    grid_t = torch.from_numpy(grid).to(maps[0].device)
    levels = [
        F.grid_sample(m.detach().float(), grid_t, padding_mode="border", align_corners=False)[:, :, 0]
        for m in maps
    ]  # each (B, C, n_max)
    values = half_numpy(torch.cat(levels, dim=1).transpose(1, 2))
    return [values[i, :n] for i, n in enumerate(counts)]


def _prediction_parts(pred: Any, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if isinstance(pred, Mapping) and all(k in pred for k in ("bboxes", "conf", "cls")):
        return pred["bboxes"], pred["conf"], pred["cls"]
    if isinstance(pred, torch.Tensor) and pred.ndim == 2 and pred.shape[1] >= 6:
        return pred[:, :4], pred[:, 4], pred[:, 5]
    raise TraceValidationError(
        f"preds[{index}] of the validator is {type(pred).__name__}; expected a dict with 'bboxes', 'conf', 'cls' "
        "or an (n, 6) tensor [x1, y1, x2, y2, conf, cls]"
    )


def check_batch(batch: Any, preds: Any) -> None:
    """TraceValidationError naming what is missing when the batch is not a detection validator's."""
    if not isinstance(batch, Mapping):
        raise TraceValidationError(f"the validator's batch is {type(batch).__name__}; expected a dict")
    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise TraceValidationError(
            f"the validator's batch has no {missing}; expected the keys {list(BATCH_KEYS)} of a detection validator"
        )
    if not isinstance(preds, Sequence) or len(preds) != len(batch["im_file"]):
        size = len(preds) if isinstance(preds, Sequence) else type(preds).__name__
        raise TraceValidationError(
            f"the validator's preds has {size} items but the batch has {len(batch['im_file'])} images"
        )


def batch_rows(
    preds: Sequence[Any],
    batch: Mapping[str, Any],
    *,
    root: Path | None,
    hashes: FileHashes,
    thresholds: Thresholds,
    label_names: Sequence[str] | None,
    maps: Sequence[torch.Tensor] | None = None,
    previews: bool = False,
) -> DetectionBatch:
    """The rows of one validation batch (see the module doc); ``maps``: the neck's feature maps of
    this batch, sampled at box centres as per-box features and pooled as image features;
    ``previews``: a JPEG of each image as the model saw it, without the letterbox's padding."""
    check_batch(batch, preds)
    parts = [_prediction_parts(p, i) for i, p in enumerate(preds)]
    counts = [len(b) for b, _, _ in parts]
    flat = torch.cat([torch.cat([b.float(), c.float()[:, None], k.float()[:, None]], 1) for b, c, k in parts])
    flat = flat.detach().cpu().numpy()
    size = tuple(int(s) for s in batch["img"].shape[-2:])
    gt_index = batch["batch_idx"].detach().cpu().numpy().astype(np.int64)
    gt_labels = batch["cls"].detach().cpu().numpy().reshape(-1).astype(np.int64)
    gt_xywh = batch["bboxes"].detach().cpu().numpy().reshape(-1, 4).astype(np.float64)
    gt_boxes = np.concatenate([gt_xywh[:, :2] - gt_xywh[:, 2:] / 2, gt_xywh[:, :2] + gt_xywh[:, 2:] / 2], 1)
    gt_boxes *= [size[1], size[0], size[1], size[0]]  # letterboxed pixels, as _prepare_batch
    starts = np.concatenate([[0], np.cumsum(counts)])
    pred_rows = [flat[starts[i]: starts[i + 1]] for i in range(len(counts))]
    gt_rows = [gt_boxes[gt_index == i] for i in range(len(counts))]
    gt_classes = [gt_labels[gt_index == i] for i in range(len(counts))]
    features = None
    if maps is not None:  # one sampling for predictions and ground truth together
        features = features_at_centres(maps, [np.concatenate([p[:, :4], g]) for p, g in zip(pred_rows, gt_rows)], size)
    predictions, targets, sizes, crops = [], [], [], []
    for i, rows in enumerate(pred_rows):
        ori_shape = [int(v) for v in batch["ori_shape"][i]]
        box = letterbox_of(batch["ratio_pad"][i], ori_shape, size)
        if previews:
            top, left = int(round(box.pad_y)), int(round(box.pad_x))
            bottom, right = top + round(ori_shape[0] * box.gain_y), left + round(ori_shape[1] * box.gain_x)
            crops.append(batch["img"][i, :, top:bottom, left:right].detach().float().cpu().numpy())
        prediction = {"boxes": undo_letterbox(rows[:, :4], box, ori_shape), "scores": rows[:, 4],
                      "labels": rows[:, 5].astype(np.int64)}
        truth = {"boxes": undo_letterbox(gt_rows[i], box, ori_shape), "labels": gt_classes[i]}
        if features is not None:
            prediction["features"], truth["features"] = features[i][: len(rows)], features[i][len(rows):]
        predictions.append(prediction)
        targets.append(truth)
        sizes.append((ori_shape[1], ori_shape[0]))
    files = list(batch["im_file"])
    return make_detection_batch(
        predictions_from(predictions, "preds"), targets_from(targets, len(files), "batch"),
        input_hashes=np.asarray([hashes(f) for f in files], dtype=object),
        image_sizes=np.asarray(sizes, np.int64),
        input_ids=np.asarray([image_id(f, root) for f in files], dtype=object),
        image_features=None if maps is None else half_numpy(pooled(maps)),
        thresholds=thresholds, label_names=label_names, previews=encode_previews(crops) if previews else None,
    )
