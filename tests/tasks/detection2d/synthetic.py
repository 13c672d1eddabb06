"""Synthetic detection data and adapters to the reference implementations (pycocotools, tidecv).

``random_detection_set`` is small and nasty (every corner of COCO's rules); ``coco_sized_set``
is large and realistic (the benchmark). The adapters hand the same rows, in the same order, to
the references: GT annotation ids and detection ids are ``row + 1`` and COCO boxes are
``[x1, y1, x2 - x1, y2 - y1]``.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from ml_debugger.tasks.detection2d.detection_set import DetectionSet

GT_ONLY_LABEL = 42  # has ground truth, never predicted
DT_ONLY_LABEL = 99  # predicted, never in the ground truth
IMAGE_W, IMAGE_H = 640, 480


def _sides(rng: np.random.Generator, n: int) -> np.ndarray:
    """Box sides clustered around COCO's 32 and 96 area limits, plus tiny and large ones."""
    kind = rng.integers(0, 5, n)
    centre = np.array([6.0, 32.0, 96.0, 200.0, 32.0])[kind]
    spread = np.array([4.0, 6.0, 10.0, 120.0, 0.0])[kind]  # kind 4: exactly 32
    return np.clip(centre + rng.uniform(-spread, spread, n), 1.0, 400.0)


def _place(rng: np.random.Generator, w: np.ndarray, h: np.ndarray, integer: bool) -> np.ndarray:
    x = rng.uniform(0, IMAGE_W - w)
    y = rng.uniform(0, IMAGE_H - h)
    boxes = np.column_stack([x, y, x + w, y + h])
    return np.round(boxes) if integer else boxes


def random_detection_set(
    seed: int,
    n_images: int = 40,
    n_classes: int = 5,
    max_gt: int = 20,
    max_dt: int = 150,
    tied_scores: bool = True,
) -> DetectionSet:
    """A small set that exercises every rule of COCOeval and tidecv.

    Per image 0-20 GTs of several (non-contiguous) classes, some crowds, some annotated twice, and
    a user ``area`` that mostly differs from the box area (sometimes exactly 32^2 or 96^2);
    0-150 detections: jittered copies of GTs (tight, loose, poor), exact and near-exact copies
    (IoU within 1e-10 of 1), duplicates, wrong labels, background boxes. Half of the images have
    integer boxes (IoUs exactly on thresholds) and scores on a 0.05 grid (ties; off with
    ``tied_scores=False``). Some images have no GT, some no detection; image 1 has 130
    detections of one class (beyond ``maxDets``); one class is never predicted and one has no GT.
    """
    rng = np.random.default_rng(seed)
    classes = np.array([1, 3, 4, 7, 12, 20, 33][:n_classes])
    gt_rows, dt_rows = [], []
    for image in range(n_images):
        integer = bool(rng.random() < 0.5)
        n_gt = 0 if rng.random() < 0.15 else int(rng.integers(1, max_gt + 1))
        w, h = _sides(rng, n_gt), _sides(rng, n_gt)
        boxes = _place(rng, w, h, integer)
        labels = rng.choice(np.r_[classes, GT_ONLY_LABEL], n_gt, p=_class_weights(len(classes)))
        twice = np.r_[np.arange(n_gt), np.flatnonzero(rng.random(n_gt) < 0.05)]  # duplicate annotations
        boxes, labels, n_gt = boxes[twice], labels[twice], len(twice)
        crowd = rng.random(n_gt) < 0.08
        box_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        area = np.where(rng.random(n_gt) < 0.3, box_area, box_area * rng.uniform(0.4, 1.1, n_gt))
        area = np.where(rng.random(n_gt) < 0.05, rng.choice([32.0**2, 96.0**2], n_gt), area)
        for row in zip(boxes, labels, crowd, area):
            gt_rows.append((image, *row))
        n_dt = 130 if image == 1 else 0 if rng.random() < 0.1 else int(rng.integers(0, max_dt + 1))
        dt_boxes, dt_labels, scores = _detections(rng, boxes, labels, classes, n_dt, integer, tied_scores)
        if image == 1:
            dt_labels[:] = classes[0]
        for row in zip(dt_boxes, dt_labels, scores):
            dt_rows.append((image, *row))
    return _assemble(n_images, gt_rows, dt_rows)


def _class_weights(n_classes: int) -> np.ndarray:
    weights = np.r_[np.ones(n_classes), 0.3]
    return weights / weights.sum()


def _detections(
    rng: np.random.Generator,
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    classes: np.ndarray,
    n: int,
    integer: bool,
    tied_scores: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # kinds: 0 tight, 1 loose, 2 poorly localised, 3 exact copy, 4 background
    kind = rng.choice(5, n, p=[0.25, 0.15, 0.15, 0.05, 0.4]) if len(gt_boxes) else np.full(n, 4)
    source = rng.integers(0, max(len(gt_boxes), 1), n)
    base = gt_boxes[source] if len(gt_boxes) else np.zeros((n, 4))
    size = np.tile(base[:, 2:] - base[:, :2], 2)
    noise = rng.normal(0.0, 1.0, (n, 4)) * np.array([0.05, 0.15, 0.4, 0.0, 0.0])[kind][:, None] * size
    boxes = base + noise
    near_copy = (kind == 3) & (rng.random(n) < 0.5) & (not integer)
    boxes[near_copy, 2:] += 1e-12 * size[near_copy, 2:]
    boxes = np.column_stack([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])])
    background = kind == 4
    boxes[background] = _place(rng, _sides(rng, background.sum()), _sides(rng, background.sum()), integer)
    if integer:
        boxes = np.round(boxes)
    detectable = np.r_[classes, DT_ONLY_LABEL]
    labels = gt_labels[source] if len(gt_boxes) else rng.choice(detectable, n)
    relabel = background | (rng.random(n) < 0.15) | (labels == GT_ONLY_LABEL)
    labels = np.where(relabel, rng.choice(detectable, n), labels)
    quality = np.array([1.5, 0.5, 0.3, 2.0, -1.0])[kind]  # logits
    scores = 1 / (1 + np.exp(-(quality + rng.normal(0, 1.0, n))))
    return boxes, labels, np.round(scores * 20) / 20 if integer and tied_scores else scores


def _assemble(n_images: int, gt_rows: list[tuple], dt_rows: list[tuple]) -> DetectionSet:
    gt = list(zip(*gt_rows)) if gt_rows else [[], np.zeros((0, 4)), [], [], []]
    dt = list(zip(*dt_rows)) if dt_rows else [[], np.zeros((0, 4)), [], []]
    return DetectionSet(
        n_images=n_images,
        gt_image=np.array(gt[0], np.int64),
        gt_boxes=np.array(gt[1], np.float64).reshape(-1, 4),
        gt_labels=np.array(gt[2], np.int64),
        gt_iscrowd=np.array(gt[3], bool),
        gt_area=np.array(gt[4], np.float64),
        dt_image=np.array(dt[0], np.int64),
        dt_boxes=np.array(dt[1], np.float64).reshape(-1, 4),
        dt_labels=np.array(dt[2], np.int64),
        dt_scores=np.array(dt[3], np.float64),
    )


def coco_dicts(data: DetectionSet) -> tuple[dict, list[dict]]:
    """The GT dataset dict and the results list that COCO's tools load, rows in order, ids ``row + 1``."""
    labels = np.union1d(data.gt_labels, data.dt_labels)
    annotations = []
    for row, (image, box, label, crowd, area) in enumerate(
        zip(
            data.gt_image.tolist(),
            data.gt_xywh.tolist(),
            data.gt_labels.tolist(),
            data.gt_iscrowd.tolist(),
            data.gt_area.tolist(),
        )
    ):
        x, y, w, h = box
        annotations.append(
            {
                "id": row + 1,
                "image_id": image,
                "category_id": label,
                "bbox": box,
                "area": area,
                "iscrowd": int(crowd),
                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
            }
        )
    dataset = {
        "images": [
            {"id": i, "width": IMAGE_W, "height": IMAGE_H, "file_name": f"{i}.jpg"}
            for i in range(data.n_images)
        ],
        "categories": [{"id": int(label), "name": str(label)} for label in labels],
        "annotations": annotations,
    }
    results = [
        {"image_id": image, "category_id": label, "bbox": box, "score": score}
        for image, label, box, score in zip(
            data.dt_image.tolist(), data.dt_labels.tolist(), data.dt_xywh.tolist(), data.dt_scores.tolist()
        )
    ]
    return dataset, results


def run_pycocotools(
    data: DetectionSet, iou_thresholds: np.ndarray | None = None, max_dets: list[int] | None = None
):
    """pycocotools' COCOeval (bbox) after evaluate, accumulate and summarize, its printing silenced."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, results = coco_dicts(data)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes cannot take an empty list
            dt = COCO()
            dt.dataset = {"images": dataset["images"], "categories": dataset["categories"], "annotations": []}
            dt.createIndex()
        evaluator = COCOeval(gt, dt, iouType="bbox")
        if iou_thresholds is not None:
            evaluator.params.iouThrs = np.asarray(iou_thresholds, np.float64)
        if max_dets is not None:
            evaluator.params.maxDets = list(max_dets)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def tidecv_data(data: DetectionSet):
    """tidecv ``Data`` objects for the GT and the detections, built directly (no COCO loader).

    Every image is registered (as tidecv's COCO loader does), crowds become ignore regions of
    their class, rows are added in order.
    """
    from tidecv import Data

    gt, preds = Data("gt"), Data("preds")
    for image in range(data.n_images):
        gt.add_image(image, f"{image}.jpg")
    for image, label, box, crowd in zip(
        data.gt_image.tolist(), data.gt_labels.tolist(), data.gt_xywh.tolist(), data.gt_iscrowd.tolist()
    ):
        if crowd:
            gt.add_ignore_region(image, label, box)
        else:
            gt.add_ground_truth(image, label, box)
    for image, label, box, score in zip(
        data.dt_image.tolist(), data.dt_labels.tolist(), data.dt_xywh.tolist(), data.dt_scores.tolist()
    ):
        preds.add_detection(image, label, score, box)
    return gt, preds


def coco_sized_set(
    seed: int = 0,
    n_images: int = 5000,
    n_classes: int = 80,
    gt_per_image: float = 7.0,
    dt_per_image: int = 100,
) -> DetectionSet:
    """A COCO-val-sized set: Poisson(``gt_per_image``) GTs per image, exactly ``dt_per_image`` detections.

    GT sizes are log-normal (many small objects, as in COCO), classes Zipf-like, 1% crowds, mask
    ``area`` 50-90% of the box. Each GT draws 1 + Poisson(1.5) detections (jittered by 3-25% of
    its size, 10% with another label, later ones scoring lower: duplicates); the rest of the
    image's detections are low-scoring background boxes.
    """
    rng = np.random.default_rng(seed)
    n_gt = rng.poisson(gt_per_image, n_images)
    gt_image = np.repeat(np.arange(n_images), n_gt)
    total = len(gt_image)
    weights = 1.0 / np.arange(1, n_classes + 1) ** 0.8
    gt_labels = rng.choice(n_classes, total, p=weights / weights.sum())
    gt_boxes = _random_boxes(rng, total)
    gt_iscrowd = rng.random(total) < 0.01
    gt_area = (
        (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1]) * rng.uniform(0.5, 0.9, total)
    )

    per_gt = 1 + rng.poisson(1.5, total)
    source = np.repeat(np.arange(total), per_gt)
    nth = np.arange(len(source)) - np.repeat(np.cumsum(per_gt) - per_gt, per_gt)
    near_image = gt_image[source]
    rank_in_image = np.arange(len(source)) - np.searchsorted(near_image, near_image)
    keep = rank_in_image < dt_per_image
    source, nth, near_image = source[keep], nth[keep], near_image[keep]
    base = gt_boxes[source]
    size = np.tile(base[:, 2:] - base[:, :2], 2)
    jitter = rng.uniform(0.03, 0.25, len(source))[:, None]
    near = base + rng.normal(0.0, 1.0, base.shape) * jitter * size
    near = np.column_stack([np.minimum(near[:, :2], near[:, 2:]), np.maximum(near[:, :2], near[:, 2:])])
    near_labels = np.where(
        rng.random(len(source)) < 0.1, rng.integers(0, n_classes, len(source)), gt_labels[source]
    )
    near_scores = 1 / (1 + np.exp(-(2.0 - 1.5 * nth - 6 * jitter[:, 0] + rng.normal(0, 1, len(source)))))

    n_background = dt_per_image - np.bincount(near_image, minlength=n_images)
    background_image = np.repeat(np.arange(n_images), n_background)
    n_bg = len(background_image)
    background = _random_boxes(rng, n_bg)
    background_scores = 1 / (1 + np.exp(-(-3.0 + rng.normal(0, 1.5, n_bg))))

    dt_image = np.r_[near_image, background_image]
    order = np.argsort(dt_image, kind="stable")
    return DetectionSet(
        n_images=n_images,
        gt_image=gt_image,
        gt_boxes=gt_boxes,
        gt_labels=gt_labels,
        gt_iscrowd=gt_iscrowd,
        gt_area=gt_area,
        dt_image=dt_image[order],
        dt_boxes=np.r_[near, background][order],
        dt_scores=np.r_[near_scores, background_scores][order],
        dt_labels=np.r_[near_labels, rng.choice(n_classes, n_bg, p=weights / weights.sum())][order],
    )


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    side = np.exp(rng.normal(np.log(60), 0.9, n))
    aspect = np.exp(rng.normal(0.0, 0.5, n))
    w = np.clip(side * np.sqrt(aspect), 2, IMAGE_W)
    h = np.clip(side / np.sqrt(aspect), 2, IMAGE_H)
    return _place(rng, w, h, integer=False)
