"""Import nuScenes detection results and ground truth as one committed epoch of 3-D detection traces.

Both files hold boxes per sample in the nuScenes detection submission format,
``{"meta": ..., "results": {sample_token: [box, ...]}}`` (what MMDetection3D writes as
``results_nusc.json``; a plain ``{sample_token: [box, ...]}`` dict is accepted too). A box has
``translation`` (global x, y, z), ``size`` (w, l, h), ``rotation`` (a quaternion w, x, y, z),
``velocity`` (vx, vy), ``detection_name``, ``attribute_name``; predictions have
``detection_score``; ground-truth boxes have ``num_pts`` and ``ego_translation``. The
ground-truth file may add ``"ego_translations": {sample_token: [x, y, z]}`` for samples without
boxes (the ego position cannot be read from a box there).

Every sample of the ground truth becomes a trace row, boxes moved so that the ego vehicle (the
``ego_translation`` of the sample's boxes) is at the origin: distances between boxes and from the
ego, which are all the nuScenes evaluation reads, are unchanged, and so are its numbers (up to the
float32 the traces store). Class names as nuScenes spells them become labels in the order of the
nuScenes classes (others after them, sorted) and are recorded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import xxhash

from ml_debugger.core import TraceSession
from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.importers import ImportSummary
from ml_debugger.store import TraceStore
from ml_debugger.tasks._columns import Thresholds
from ml_debugger.tasks.detection3d import FrameBoxes, make_detection3d_batch
from ml_debugger.tasks.detection3d.nuscenes_config import NUSCENES_CLASS_RANGE

logger = logging.getLogger(__name__)

FRAMES_PER_BATCH = 256


def _load(path: str | Path, what: str) -> tuple[dict[str, list[dict]], dict[str, list[float]]]:
    """The boxes per sample, and the file's ``ego_translations`` per sample (empty when absent)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the nuScenes {what} file {str(path)!r}: {exc}") from exc
    boxes = data.get("results", data) if isinstance(data, dict) else None
    if not isinstance(boxes, dict) or not all(isinstance(v, list) for v in boxes.values()):
        raise ConfigurationError(
            f"the {what} file must be {{'results': {{sample_token: [box, ...]}}}} (the nuScenes submission format)"
        )
    egos = data.get("ego_translations", {}) if "results" in data else {}
    return boxes, egos


def quaternion_yaw(rotation: np.ndarray) -> np.ndarray:
    """Heading about z of unit quaternions ``(w, x, y, z)``, as the devkit's ``quaternion_yaw``."""
    q = rotation / np.linalg.norm(rotation, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def _frame(boxes: list[dict], labels: dict[str, int], ego: np.ndarray, field: str, *, predictions: bool) -> FrameBoxes:
    n = len(boxes)

    def column(key: str, width: int) -> np.ndarray:
        try:
            values = np.array([b[key] for b in boxes], dtype=np.float64).reshape(n, width)
        except (KeyError, ValueError, TypeError) as exc:
            raise TraceValidationError(f"{field}: every box needs {key!r} with {width} numbers ({exc})") from exc
        return values

    translation, size = column("translation", 3), column("size", 3)
    rotation = column("rotation", 4) if n else np.zeros((0, 4))
    velocity = np.array([b.get("velocity", [np.nan, np.nan]) for b in boxes], dtype=np.float64).reshape(n, 2)
    centre = translation - np.r_[ego[:2], 0.0]
    frame = FrameBoxes(
        boxes=np.column_stack([centre, size, quaternion_yaw(rotation) if n else np.zeros(0)]).astype(np.float32),
        labels=np.array([labels[b["detection_name"]] for b in boxes], dtype=np.int64),
        scores=column("detection_score", 1)[:, 0].astype(np.float32) if predictions else None,
        velocities=velocity.astype(np.float32),
        attributes=tuple(str(b.get("attribute_name") or "") for b in boxes),
        num_points=None if predictions else np.array([b.get("num_pts", -1) for b in boxes], dtype=np.int32),
    )
    return frame


def _ego(token: str, gt: list[dict], pred: list[dict], egos: dict[str, list[float]]) -> np.ndarray | None:
    """The ego vehicle's position in a sample: a box's ``ego_translation``, else the file's
    ``ego_translations`` entry, else None."""
    for box in (*gt, *pred):
        if "ego_translation" in box:
            return np.asarray(box["ego_translation"], dtype=np.float64)
    return None if token not in egos else np.asarray(egos[token], dtype=np.float64)


def _labels(gt: dict[str, list[dict]], pred: dict[str, list[dict]]) -> dict[str, int]:
    names = {b.get("detection_name") for boxes in (*gt.values(), *pred.values()) for b in boxes}
    if None in names:
        raise TraceValidationError("every box needs a 'detection_name'")
    ordered = [n for n in NUSCENES_CLASS_RANGE if n in names] + sorted(names - set(NUSCENES_CLASS_RANGE))
    return {name: label for label, name in enumerate(ordered)}


def import_nuscenes(
    ground_truth_path: str | Path,
    predictions_path: str | Path,
    *,
    model_name: str,
    version_name: str,
    dataset_type: str = "val",
    n_epoch: int = 0,
    store: TraceStore | None = None,
) -> ImportSummary:
    """Record nuScenes-format ground truth and predictions as epoch ``n_epoch`` of ``dataset_type``
    (``input_id`` is the sample token)."""
    (gt, egos), (pred, _) = _load(ground_truth_path, "ground-truth"), _load(predictions_path, "predictions")
    unknown = set(pred) - set(gt)
    if unknown:
        raise ConfigurationError(
            f"the predictions name {len(unknown)} samples the ground truth does not have (e.g. {sorted(unknown)[:3]})"
        )
    labels = _labels(gt, pred)
    names = list(labels)
    session = TraceSession(model_name, version_name, "detection3d", store=store)
    tokens = list(gt)
    objects = detections = without_ego = 0
    try:
        for start in range(0, len(tokens), FRAMES_PER_BATCH):
            chunk = tokens[start : start + FRAMES_PER_BATCH]
            targets, predictions = [], []
            for token in chunk:
                ego = _ego(token, gt[token], pred.get(token, []), egos)
                without_ego += ego is None
                ego = np.zeros(3) if ego is None else ego
                targets.append(_frame(gt[token], labels, ego, f"ground truth of sample {token}", predictions=False))
                predictions.append(_frame(pred.get(token, []), labels, ego, f"predictions of sample {token}", predictions=True))
            objects += sum(len(t) for t in targets)
            detections += sum(len(p) for p in predictions)
            hashes = [xxhash.xxh3_128_hexdigest(f"nuscenes:{token}".encode()) for token in chunk]
            session.record(
                make_detection3d_batch(predictions, targets, input_hashes=hashes, input_ids=chunk,
                                       thresholds=Thresholds(), label_names=names),
                dataset_type=dataset_type, n_epoch=n_epoch,
            )
        session.wait_for_save(n_epoch)
    finally:
        session.close()
    if without_ego:
        logger.warning(
            "%d samples have no ego_translation on any box nor in 'ego_translations': their boxes are kept where "
            "they are, so class ranges are measured from the origin there", without_ego,
        )
    return ImportSummary(inputs=len(tokens), objects=objects, detections=detections, epoch=n_epoch)
