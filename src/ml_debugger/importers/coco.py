"""Import a COCO instances file and a COCO results file as one committed epoch of 2-D detection traces.

Every image of the instances file becomes a trace row (images without objects or detections
included); boxes are converted from COCO's ``[x, y, w, h]`` to ``[x1, y1, x2, y2]``; ``iscrowd``
and ``area`` are kept, so the COCO metrics of the imported epoch equal pycocotools' on the same
two files; category ids are kept as labels and their names recorded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from ml_debugger.core import TraceSession
from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.importers import ImportSummary
from ml_debugger.store import TraceStore
from ml_debugger.tasks.detection2d import ImagePredictions, ImageTargets, Thresholds, make_detection_batch

logger = logging.getLogger(__name__)

IMAGES_PER_BATCH = 1024


def _load_json(path: str | Path, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the COCO {what} file {str(path)!r}: {exc}") from exc


def _xyxy(boxes: list, field: str) -> np.ndarray:
    xywh = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(xywh).all() or (xywh[:, 2:] < 0).any():
        raise TraceValidationError(f"{field} has boxes with NaN or negative width/height; COCO boxes are [x, y, w, h]")
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def _grouped(items: list[dict], key: str = "image_id") -> dict[Any, list[dict]]:
    groups: dict[Any, list[dict]] = {}
    for item in items:
        groups.setdefault(item[key], []).append(item)
    return groups


def _label_names(categories: list[dict]) -> list[str] | None:
    if not categories:
        return None
    names = [""] * (max(int(c["id"]) for c in categories) + 1)
    for c in categories:
        names[int(c["id"])] = str(c.get("name", ""))
    return names


def _check_references(instances: dict, results: list[dict]) -> None:
    if not isinstance(instances, dict) or "images" not in instances:
        raise ConfigurationError("the instances file must be a COCO dict with 'images' (and 'annotations', 'categories')")
    if not isinstance(results, list):
        raise ConfigurationError("the results file must be a COCO results list of {image_id, category_id, bbox, score}")
    known = {image["id"] for image in instances["images"]}
    unknown = {r.get("image_id") for r in results} - known
    if unknown:
        raise ConfigurationError(
            f"the results name {len(unknown)} image ids that the instances file does not have "
            f"(e.g. {sorted(map(str, unknown))[:5]}); both files must describe the same images"
        )
    missing = [key for r in results[:1] for key in ("image_id", "category_id", "bbox", "score") if key not in r]
    if missing:
        raise ConfigurationError(f"COCO results need image_id, category_id, bbox and score; the first lacks {missing}")


def _rows(instances: dict, results: list[dict]) -> Iterator[tuple[dict, ImageTargets, ImagePredictions]]:
    annotations = _grouped(instances.get("annotations", []))
    detections = _grouped(results)
    for image in instances["images"]:
        anns = annotations.get(image["id"], [])
        dets = detections.get(image["id"], [])
        field = f"image {image['id']}"
        gt_boxes = _xyxy([a["bbox"] for a in anns], f"{field} annotations")
        target = ImageTargets(
            boxes=gt_boxes.astype(np.float32),
            labels=np.array([a["category_id"] for a in anns], dtype=np.int64),
            iscrowd=np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool),
            area=np.array([a.get("area", (b[2] - b[0]) * (b[3] - b[1])) for a, b in zip(anns, gt_boxes)],
                          dtype=np.float32),
        )
        prediction = ImagePredictions(
            boxes=_xyxy([d["bbox"] for d in dets], f"{field} results").astype(np.float32),
            scores=np.array([d["score"] for d in dets], dtype=np.float32),
            labels=np.array([d["category_id"] for d in dets], dtype=np.int64),
        )
        yield image, target, prediction


def import_coco(
    instances_path: str | Path,
    results_path: str | Path,
    *,
    model_name: str,
    version_name: str,
    dataset_type: str = "val",
    n_epoch: int = 0,
    store: TraceStore | None = None,
) -> ImportSummary:
    """Record a COCO instances file and a results file as epoch ``n_epoch`` of ``dataset_type``.

    ``input_id`` is the image's ``file_name`` (its ``id`` when there is none); ``input_hash``
    hashes the file name and size, as the pixels are not imported.
    """
    instances = _load_json(instances_path, "instances")
    results = _load_json(results_path, "results")
    _check_references(instances, results)
    names = _label_names(instances.get("categories", []))
    session = TraceSession(model_name, version_name, "detection2d", store=store)
    images = objects = detections = 0
    batch: list[tuple[dict, ImageTargets, ImagePredictions]] = []
    try:
        for row in _rows(instances, results):
            batch.append(row)
            if len(batch) == IMAGES_PER_BATCH:
                _record(session, batch, names, dataset_type, n_epoch)
                batch = []
            images += 1
            objects += len(row[1].labels)
            detections += len(row[2].labels)
        if batch:
            _record(session, batch, names, dataset_type, n_epoch)
        session.wait_for_save(n_epoch)
    finally:
        session.close()
    logger.info("imported %d images, %d objects, %d detections", images, objects, detections)
    return ImportSummary(inputs=images, objects=objects, detections=detections, epoch=n_epoch)


def _record(session: TraceSession, batch: list, names: list[str] | None, dataset_type: str, n_epoch: int) -> None:
    images = [image for image, _, _ in batch]
    ids = np.array([str(image.get("file_name") or image["id"]) for image in images], dtype=object)
    sizes = np.array([[image.get("width", 0), image.get("height", 0)] for image in images])
    hashes = np.array([xxhash.xxh3_128_hexdigest(f"coco:{i}:{w}x{h}".encode()) for i, (w, h) in zip(ids, sizes)], dtype=object)
    session.record(
        make_detection_batch(
            [p for _, _, p in batch], [t for _, t, _ in batch], input_hashes=hashes, input_ids=ids,
            image_sizes=sizes, thresholds=Thresholds(), label_names=names,
        ),
        dataset_type=dataset_type, n_epoch=n_epoch,
    )
