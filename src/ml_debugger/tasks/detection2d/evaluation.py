"""The 2-D detection evaluation: stored rows -> COCO metrics, TIDE errors and object units ->
signals, hotspots, categories, codes and heatmaps (see the README's detection reference)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ml_debugger.evaluator.analysis.categories import category_ratios
from ml_debugger.evaluator.analysis.codes import (
    code_catalog,
    codes_per_unit,
    detect_codes,
    issues_table,
    registered_codes,
)
from ml_debugger.evaluator.analysis.heatmaps import build_heatmaps
from ml_debugger.evaluator.analysis.hotspots import find_hotspots
from ml_debugger.evaluator.result import HEATMAP_PREFIX
from ml_debugger.exceptions import NoDataError
from ml_debugger.tasks import EvaluationOutput
from ml_debugger.tasks.detection2d import codes as _codes  # noqa: F401 - registers the DET codes
from ml_debugger.tasks.detection2d.categories import assign_categories
from ml_debugger.tasks.detection2d.coco_metrics import COCO_IOU_THRESHOLDS, coco_evaluate
from ml_debugger.tasks.detection2d.config import DetectionConfig
from ml_debugger.tasks.detection2d.loading import ImageGroup, load_detection_data
from ml_debugger.tasks.detection2d.metrics import (
    PER_CLASS_COLUMNS,
    TIDE_COLUMNS,
    concat,
    metrics_row,
    metrics_table,
    per_class_rows,
    tide_rows,
)
from ml_debugger.tasks.detection2d.signals import add_signals
from ml_debugger.tasks.detection2d.tide import tide_errors
from ml_debugger.tasks.detection2d.units import GroupUnits, build_units

logger = logging.getLogger(__name__)

TASK = "detection2d"


def _threads() -> int:
    """Threads the COCO and TIDE engines may use at once: 2 when this process has 2 or more cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cores, 2)


def concurrently(*calls: Callable[[], Any]) -> list[Any]:
    """The results of ``calls`` (functions without arguments), in order, run at once in threads
    when there are cores for it (``_threads``), else one after the other.

    For independent numpy-heavy work: the COCO and TIDE engines only read the (read-only)
    ``DetectionSet`` and spend their time in numpy, which releases the GIL, so two of them take
    about the time of the longer one on two cores. Results do not depend on the order.
    """
    if len(calls) < 2 or _threads() < 2:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=len(calls) - 1, thread_name_prefix="mld-det") as pool:
        others = [pool.submit(call) for call in calls[1:]]
        first = calls[0]()
        return [first, *(future.result() for future in others)]


def coco_and_tide(group: ImageGroup, config: DetectionConfig) -> tuple[Any, Any, Any]:
    """COCO evaluation (COCO's thresholds), the one at ``iou_threshold`` the units are matched at
    (the same unless it is not one of COCO's) and TIDE analysis of one group, computed at once."""
    calls = [
        lambda: tide_errors(group.boxes, pos_threshold=config.iou_threshold, background_threshold=config.background_iou),
        lambda: coco_evaluate(group.boxes),
    ]
    if not np.isclose(COCO_IOU_THRESHOLDS, config.iou_threshold).any():
        calls.append(lambda: coco_evaluate(group.boxes, iou_thresholds=[config.iou_threshold]))
    tide, coco, *matching = concurrently(*calls)
    return coco, matching[0] if matching else coco, tide


def _group_units(group: ImageGroup, config: DetectionConfig, names: dict[int, str]) -> tuple[GroupUnits, Any, list]:
    """Units, COCO evaluation and TIDE analysis of one dataset and epoch."""
    coco, matching, tide = coco_and_tide(group, config)
    units = build_units(group, matching, tide, config)
    return units, coco, [per_class_rows(group, coco, names), tide_rows(group, tide)]


def _stacked_features(parts: list[GroupUnits]) -> np.ndarray | None:
    """The units' features of every group, when every group has features of one width."""
    widths = {None if p.features is None else p.features.shape[1] for p in parts if len(p.table)}
    if len(widths) != 1 or None in widths:
        if len(widths) > 1:
            logger.warning("ml-debugger: traced features differ between epochs or datasets; feature signals are off")
        return None
    return np.concatenate([p.features for p in parts if len(p.table)]).astype(np.float32)


def _count(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    counts = table.groupby(keys, sort=True, observed=True).size().rename("count").reset_index()
    return counts.astype({"epoch": np.int64, "count": np.int64})


def heatmaps(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The shared heatmaps (class x category, class x code, epoch x category), the confusion matrix
    with the background as class -1 (every object once in the row of its class, every false
    positive that is not a classification error once in the background row; a classification
    error is counted once, by its object), class x error type and size x error type."""
    out = build_heatmaps(table)
    cls_duplicate = (table["unit_type"] == "false_positive") & (table["error_type"] == "cls")
    confusion = ["dataset", "epoch", "label", "prediction"]  # build_heatmaps' confusion, on the other units
    out["confusion"] = _count(table.loc[~cls_duplicate, confusion], confusion).astype(
        {"dataset": str, "label": np.int64, "prediction": np.int64}
    )
    wrong = ~table["correct"].to_numpy(dtype=bool)
    errors = table.loc[wrong, ["dataset", "epoch", "object_class", "size_bin", "error_type"]]
    errors = errors.rename(columns={"object_class": "class"})
    out["class_by_error_type"] = _count(errors, ["dataset", "epoch", "class", "error_type"])
    out["size_by_error_type"] = _count(errors, ["dataset", "epoch", "size_bin", "error_type"])
    return out


class Detection2DEvaluation:
    """Implements ``TaskEvaluation`` for 2-D detection."""

    def make_config(self, thresholds: Mapping[str, Any]) -> DetectionConfig:
        return DetectionConfig.from_kwargs(**thresholds)

    def evaluate(self, table: pa.Table, config: DetectionConfig, *, progress: bool = False) -> EvaluationOutput:
        data = load_detection_data(table)
        if not data.groups:
            raise NoDataError("no evaluable rows")
        results = [_group_units(group, config, data.label_names) for group in data.groups]
        parts = [units for units, _, _ in results]
        for part in parts:
            part.table["operating_score"] = part.operating_score
        units = pd.concat([p.table for p in parts], ignore_index=True)
        units, embedding = add_signals(units, _stacked_features(parts), config)
        units["hotspot_cluster"], hotspots = find_hotspots(units, embedding, config)
        units["category"] = assign_categories(units, config)
        codes = registered_codes(TASK)
        masks = detect_codes(units, config, codes)
        units["error_codes"] = codes_per_unit(masks)
        metrics = []
        scored = units[["dataset", "epoch", "unit_type", "correct", "error_proba"]]
        for group, (_, coco, _) in zip(data.groups, results):
            mine = scored[(scored["dataset"] == group.dataset) & (scored["epoch"] == group.epoch)]
            metrics.append(metrics_row(group, coco, mine))
        tables = {
            "metrics": metrics_table(metrics),
            "categories": category_ratios(units),
            "issues": issues_table(units, masks, config, codes),
            "hotspots": hotspots,
            "samples": units,
            "codes": code_catalog(codes),
            "per_class_ap": concat([extra[0] for _, _, extra in results], PER_CLASS_COLUMNS),
            "tide": concat([extra[1] for _, _, extra in results], TIDE_COLUMNS),
            **{HEATMAP_PREFIX + name: frame for name, frame in heatmaps(units).items()},
        }
        meta = {
            "rows": len(units),
            "images": sum(g.boxes.n_images for g in data.groups),
            "stored_rows": data.stored_rows,
            "duplicates_removed": data.duplicates_removed,
            "features": embedding is not None,
            "label_names": {str(k): v for k, v in data.label_names.items()},
            "operating_scores": {f"{g.dataset}/{g.epoch}": p.operating_score for g, p in zip(data.groups, parts)},
        }
        return EvaluationOutput(tables=tables, meta=meta)


EVALUATION = Detection2DEvaluation()
