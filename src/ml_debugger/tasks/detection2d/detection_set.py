"""``DetectionSet``: the ground truth and detections of a set of images, one row per box.

Every metric of ``ml_debugger.tasks.detection2d`` reads this columnar form. Rows keep the order
they were given in; the reference implementations use that order to break exact ties (equal
scores, equal IoUs), so the results depend on it exactly as COCOeval's and tidecv's do when
their annotations are listed in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ml_debugger.exceptions import ConfigurationError


@dataclass(frozen=True, eq=False, kw_only=True)
class DetectionSet:
    """Ground truth and detections of a set of images, columnar (one row per box).

    Images are ``0 .. n_images - 1``; images without any box still count (COCOeval and tidecv
    iterate over every image id of the ground truth). Boxes are ``x1, y1, x2, y2`` in pixels with
    ``x2 >= x1`` and ``y2 >= y1``; the COCO box handed to pycocotools is ``[x1, y1, x2 - x1,
    y2 - y1]``. Labels are any non-negative integers. ``gt_iscrowd`` marks COCO crowd regions
    (ignored: they neither count as objects to find nor make a detection a false positive);
    ``gt_area`` is COCO's annotation ``area`` (the mask area in COCO itself), which is what the
    small / medium / large ranges test for ground truth. Both default to "no crowd" and the box
    area. Detections are always sized by their box area, as pycocotools' ``loadRes`` does.

    Arrays are copied to the documented dtypes, validated (errors name the field) and made
    read-only; after construction ``gt_iscrowd`` and ``gt_area`` are always arrays.
    """

    n_images: int
    gt_image: np.ndarray  # (n_gt,) int64
    gt_boxes: np.ndarray  # (n_gt, 4) float64 xyxy
    gt_labels: np.ndarray  # (n_gt,) int64
    gt_iscrowd: np.ndarray | None = None  # (n_gt,) bool, default all False
    gt_area: np.ndarray | None = None  # (n_gt,) float64, default (x2 - x1) * (y2 - y1)
    dt_image: np.ndarray  # (n_dt,) int64
    dt_boxes: np.ndarray  # (n_dt, 4) float64 xyxy
    dt_scores: np.ndarray  # (n_dt,) float64
    dt_labels: np.ndarray  # (n_dt,) int64
    gt_xywh: np.ndarray = field(init=False, repr=False)  # (n_gt, 4) COCO boxes, derived
    dt_xywh: np.ndarray = field(init=False, repr=False)  # (n_dt, 4) COCO boxes, derived

    def __post_init__(self) -> None:
        if isinstance(self.n_images, bool) or not isinstance(self.n_images, (int, np.integer)):
            raise ConfigurationError(f"n_images must be an int; got {type(self.n_images).__name__}")
        if self.n_images < 0:
            raise ConfigurationError(f"n_images must be >= 0; got {self.n_images}")
        object.__setattr__(self, "n_images", int(self.n_images))
        for side in ("gt", "dt"):
            boxes = _boxes(getattr(self, f"{side}_boxes"), f"{side}_boxes")
            n = len(boxes)
            self._set(f"{side}_boxes", boxes)
            self._set(f"{side}_image", _ints(getattr(self, f"{side}_image"), f"{side}_image", n))
            self._set(f"{side}_labels", _ints(getattr(self, f"{side}_labels"), f"{side}_labels", n))
            image = getattr(self, f"{side}_image")
            if n and (image.min() < 0 or image.max() >= self.n_images):
                raise ConfigurationError(
                    f"{side}_image must be in [0, n_images={self.n_images}); "
                    f"got values in [{image.min()}, {image.max()}]"
                )
            labels = getattr(self, f"{side}_labels")
            if n and labels.min() < 0:
                raise ConfigurationError(f"{side}_labels must be >= 0; got {labels.min()}")
            xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
            self._set(f"{side}_xywh", xywh)
        n_gt = len(self.gt_boxes)
        iscrowd = (
            np.zeros(n_gt, bool) if self.gt_iscrowd is None else _column(self.gt_iscrowd, "gt_iscrowd", n_gt)
        )
        if iscrowd.dtype != bool and not np.isin(iscrowd, (0, 1)).all():
            raise ConfigurationError("gt_iscrowd must be boolean or 0/1")
        self._set("gt_iscrowd", iscrowd.astype(bool))
        if self.gt_area is None:
            area = self.gt_xywh[:, 2] * self.gt_xywh[:, 3]
        else:
            area = _column(self.gt_area, "gt_area", n_gt).astype(np.float64)
            if not np.isfinite(area).all():
                raise ConfigurationError("gt_area must be finite")
        self._set("gt_area", area)
        scores = _column(self.dt_scores, "dt_scores", len(self.dt_boxes)).astype(np.float64)
        if not np.isfinite(scores).all():
            raise ConfigurationError("dt_scores must be finite")
        self._set("dt_scores", scores)

    def _set(self, name: str, value: np.ndarray) -> None:
        value = np.array(value, copy=True)
        value.setflags(write=False)
        object.__setattr__(self, name, value)

    @property
    def n_gt(self) -> int:
        return len(self.gt_boxes)

    @property
    def n_dt(self) -> int:
        return len(self.dt_boxes)

    @classmethod
    def from_per_image(
        cls, targets: Sequence[Mapping[str, object]], predictions: Sequence[Mapping[str, object]]
    ) -> DetectionSet:
        """Build from one dict per image, torchmetrics' ``MeanAveragePrecision.update`` layout.

        ``targets[i]`` has ``boxes`` (xyxy), ``labels`` and optionally ``iscrowd`` and ``area``;
        ``predictions[i]`` has ``boxes``, ``scores`` and ``labels``. Both lists index the same
        images. Array-likes (lists, numpy arrays, CPU tensors via ``np.asarray``) are accepted.
        """
        if len(targets) != len(predictions):
            raise ConfigurationError(
                "targets and predictions must list the same images; "
                f"got {len(targets)} and {len(predictions)}"
            )
        gt = _stack(targets, ("boxes", "labels"), ("iscrowd", "area"), "targets")
        dt = _stack(predictions, ("boxes", "labels", "scores"), (), "predictions")
        return cls(
            n_images=len(targets),
            gt_image=gt["image"],
            gt_boxes=gt["boxes"],
            gt_labels=gt["labels"],
            gt_iscrowd=gt.get("iscrowd"),
            gt_area=gt.get("area"),
            dt_image=dt["image"],
            dt_boxes=dt["boxes"],
            dt_scores=dt["scores"],
            dt_labels=dt["labels"],
        )


def _stack(
    entries: Sequence[Mapping[str, object]], required: tuple[str, ...], optional: tuple[str, ...], name: str
) -> dict[str, np.ndarray]:
    """Concatenate per-image dicts into columns plus an ``image`` column.

    Optional keys must be in every dict or in none.
    """
    parts: dict[str, list[np.ndarray]] = {key: [] for key in ("image", *required, *optional)}
    for image, entry in enumerate(entries):
        missing = [key for key in required if key not in entry]
        if missing:
            raise ConfigurationError(f"{name}[{image}] has no {missing}; it has {sorted(entry)}")
        boxes = np.asarray(entry["boxes"], dtype=np.float64).reshape(-1, 4)
        parts["image"].append(np.full(len(boxes), image, np.int64))
        parts["boxes"].append(boxes)
        for key in (*required[1:], *optional):
            if key not in entry:
                continue
            values = np.asarray(entry[key]).reshape(-1)
            if len(values) != len(boxes):
                raise ConfigurationError(
                    f"{name}[{image}][{key!r}] has {len(values)} values for {len(boxes)} boxes"
                )
            parts[key].append(values)
    columns = {}
    for key, arrays in parts.items():
        if key in optional and not arrays:
            continue
        if key in optional and len(arrays) != len(entries):
            raise ConfigurationError(f"{name}: {key!r} must be given for every image or for none")
        columns[key] = np.concatenate(arrays) if arrays else np.zeros((0, 4) if key == "boxes" else 0)
    return columns


def _column(values: object, name: str, n: int) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (n,):
        raise ConfigurationError(f"{name} must have shape ({n},); got {array.shape}")
    return array


def _ints(values: object, name: str, n: int) -> np.ndarray:
    array = _column(values, name, n)
    if array.dtype.kind not in "iu" and not (n == 0 or np.array_equal(array, np.round(array))):
        raise ConfigurationError(f"{name} must hold integers; got dtype {array.dtype}")
    return array.astype(np.int64)


def _boxes(values: object, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        array = array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ConfigurationError(f"{name} must have shape (n, 4) as x1, y1, x2, y2; got {array.shape}")
    if not np.isfinite(array).all():
        raise ConfigurationError(f"{name} must be finite")
    bad = (array[:, 2] < array[:, 0]) | (array[:, 3] < array[:, 1])
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ConfigurationError(
            f"{name} must have x2 >= x1 and y2 >= y1; row {row} is {array[row].tolist()}"
        )
    return array
