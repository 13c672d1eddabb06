"""Framework-free helpers of the detection tracers: arrays from any framework's tensors, box formats,
images' sizes and hashes, and the post-filter that applies thresholds to predictions.

Nothing here imports torch or TensorFlow: tensors are recognised by what they can do, so the
TensorFlow path never needs torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml_debugger.core import hash_samples
from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.tasks.detection2d import Thresholds

BOX_FORMATS = ("xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw", "cxcywh")
"""Box formats understood by `to_xyxy`; each may be prefixed ``rel_`` (normalised to the image)."""


def to_numpy(value: Any) -> np.ndarray:
    """A CPU numpy array of a torch or TensorFlow tensor (detached), a numpy array or a list."""
    if isinstance(value, np.ndarray):
        return value
    detach = getattr(value, "detach", None)
    if callable(detach):  # a torch.Tensor
        tensor = detach()
        if tensor.dtype.is_floating_point and tensor.element_size() < 4:
            tensor = tensor.float()
        return tensor.cpu().numpy()
    numpy = getattr(value, "numpy", None)
    if callable(numpy):  # a TensorFlow eager tensor
        return np.asarray(numpy())
    return np.asarray(value)


def targets_to_numpy(raw: Any) -> Any:
    """Ground truth in either reference format with every tensor turned into numpy (structure kept)."""
    if isinstance(raw, Mapping):
        return {key: [to_numpy(v) for v in values] if _is_sequence(values) else to_numpy(values)
                for key, values in raw.items()}
    if _is_sequence(raw):
        return [{k: to_numpy(v) for k, v in item.items()} if isinstance(item, Mapping) else item for item in raw]
    return raw


def ids_to_numpy(input_ids: Any) -> np.ndarray | None:
    """Ids as numpy: a tensor or array as it is, a list or tuple item by item (items may be scalar tensors)."""
    if input_ids is None:
        return None
    if _is_sequence(input_ids):
        return np.asarray([to_numpy(i).item() if hasattr(i, "shape") else i for i in input_ids], dtype=object)
    return to_numpy(input_ids)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


@dataclass(frozen=True)
class ImageBatch:
    """The images of one traced batch: ``sizes`` ``(batch, 2)`` width, height in pixels, one
    content hash per image, and the images themselves (for previews)."""

    sizes: np.ndarray
    hashes: np.ndarray
    pixels: tuple[np.ndarray, ...] = ()

    def __len__(self) -> int:
        return len(self.sizes)


def image_batch(images: Sequence[np.ndarray] | np.ndarray, *, channels_last: bool) -> ImageBatch:
    """Sizes and hashes of a batch array ``(B, C, H, W)`` / ``(B, H, W, C)`` or of a list of images.

    Each image is hashed on its own (dtype, shape and bytes), so the same image hashes the same
    in a batch tensor and in a list.
    """
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            layout = "(batch, height, width, channels)" if channels_last else "(batch, channels, height, width)"
            raise TraceValidationError(f"inputs must be a batch of images {layout}; got shape {images.shape}")
        height, width = images.shape[1:3] if channels_last else images.shape[2:4]
        sizes = np.tile([width, height], (len(images), 1))
        return ImageBatch(sizes.astype(np.int64), hash_samples([images]), tuple(images))
    sizes, hashes = [], []
    for i, image in enumerate(images):
        if image.ndim != 3:
            raise TraceValidationError(f"inputs[{i}] must be one image with 3 dimensions; got shape {image.shape}")
        height, width = image.shape[0:2] if channels_last else image.shape[1:3]
        sizes.append((width, height))
        hashes.append(hash_samples([image[None]])[0])
    if not sizes:
        raise TraceValidationError("inputs has no images")
    return ImageBatch(np.asarray(sizes, np.int64), np.asarray(hashes, dtype=object), tuple(images))


def id_hashes(input_ids: np.ndarray) -> np.ndarray:
    """Hashes of the ids themselves, for predictions recorded without their images."""
    return np.asarray(
        [hash_samples([np.frombuffer(str(i).encode(), np.uint8)[None]])[0] for i in input_ids], dtype=object
    )


def to_xyxy(boxes: np.ndarray, box_format: str, width: float, height: float) -> np.ndarray:
    """``(n, 4)`` boxes in ``box_format`` (``rel_`` prefix: normalised) as xyxy pixels."""
    relative = box_format.startswith("rel_")
    base = box_format[4:] if relative else box_format
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if base == "xyxy":
        out = b.copy()
    elif base == "yxyx":
        out = b[:, [1, 0, 3, 2]]
    elif base == "xywh":
        out = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
    elif base in ("center_xywh", "cxcywh"):
        out = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1)
    elif base == "center_yxhw":
        centre, size = b[:, [1, 0]], b[:, [3, 2]]
        out = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    else:
        raise ConfigurationError(
            f"unknown box format {box_format!r}; expected one of {', '.join(BOX_FORMATS)} (optionally with 'rel_')"
        )
    if relative:
        out = out * np.array([width, height, width, height])
    return out


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Boxes clipped to the image ``[0, width] x [0, height]``."""
    return np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_thresh: float) -> np.ndarray:
    """Indices kept by greedy per-class non-maximum suppression, highest score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    suppressed = np.zeros(len(boxes), bool)
    for rank, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[rank + 1:]
        rest = rest[(labels[rest] == labels[i]) & ~suppressed[rest]]
        if not len(rest):
            continue
        width = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        height = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = width * height
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        suppressed[rest[iou > iou_thresh]] = True
    return np.asarray(keep, dtype=np.int64)


def post_filter(prediction: dict[str, np.ndarray], limits: Thresholds) -> dict[str, np.ndarray]:
    """One image's predictions with the stricter limits applied: scores above ``score_thresh``,
    per-class NMS at ``iou_thresh``, the ``max_detections`` best; ``None`` limits are not applied."""
    scores = prediction["scores"]
    keep = np.arange(len(scores))
    if limits.score_thresh is not None:
        keep = keep[scores[keep] > limits.score_thresh]
    if limits.iou_thresh is not None and len(keep) > 1:
        keep = keep[nms(prediction["boxes"][keep], scores[keep], prediction["labels"][keep], limits.iou_thresh)]
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    if limits.max_detections is not None:
        keep = keep[: limits.max_detections]
    if len(keep) == len(scores) and (keep == np.arange(len(scores))).all():
        return prediction
    return {key: value if value is None else value[keep] for key, value in prediction.items()}
