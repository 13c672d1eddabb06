"""The 3-D detection evaluation: stored rows -> nuScenes metrics and centre-distance matching ->
object units -> signals, hotspots, categories, codes, range and bird's-eye-view tables."""

from __future__ import annotations

import logging
from collections.abc import Mapping
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
from ml_debugger.evaluator.analysis.metrics import binary_scores
from ml_debugger.evaluator.result import HEATMAP_PREFIX
from ml_debugger.exceptions import NoDataError
from ml_debugger.tasks import EvaluationOutput
from ml_debugger.tasks._object_signals import add_object_signals, count
from ml_debugger.tasks.detection3d import codes as _codes  # noqa: F401 - registers the D3D codes
from ml_debugger.tasks.detection3d.categories import assign_categories
from ml_debugger.tasks.detection3d.config import Detection3DConfig
from ml_debugger.tasks.detection3d.loading import FrameGroup, load_detection3d_data
from ml_debugger.tasks.detection3d.nuscenes_config import NuScenesConfig
from ml_debugger.tasks.detection3d.nuscenes_metrics import nuscenes_evaluate
from ml_debugger.tasks.detection3d.units import GroupUnits, build_units, geometry_features

logger = logging.getLogger(__name__)

TASK = "detection3d"
NUSCENES_KEYS = ("map", "nds", "mate", "mase", "maoe", "mave", "maae")
METRIC_COLUMNS = ("counts", "objects", "predictions", *NUSCENES_KEYS, "error_proba_auroc", "error_proba_auprc")
ERROR_FEATURES = ("score", "range", "num_points", "knn_error_rate", "knn_distance", "coverage_percentile")
BEV_CELL = 10.0
"""Side (m) of the bird's-eye-view grid cells."""


def _class_names(data_names: dict[int, str], group: FrameGroup) -> dict[int, str]:
    labels = np.union1d(group.boxes.gt_labels, group.boxes.dt_labels)
    return {int(label): data_names.get(int(label), f"class_{int(label)}") for label in labels}


def _fp_recurrence(match_distance: float):
    def recurrence(fps: pd.DataFrame) -> np.ndarray:
        """Epochs with a false positive of the same class on the same frame within ``match_distance``."""
        rows = fps[["dataset", "input_id", "prediction", "epoch", "cx", "cy"]].reset_index(drop=True)
        rows["unit"] = np.arange(len(rows))
        pairs = rows.merge(rows, on=["dataset", "input_id", "prediction"], suffixes=("", "_other"))
        close = np.hypot(pairs["cx"] - pairs["cx_other"], pairs["cy"] - pairs["cy_other"]) < match_distance
        other = pairs[close & (pairs["epoch"] != pairs["epoch_other"])][["unit", "epoch_other"]].drop_duplicates()
        return 1 + np.bincount(other["unit"].to_numpy(dtype=np.int64), minlength=len(rows))

    return recurrence


def _stacked_features(parts: list[GroupUnits], units: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    """The units' traced features when every group has them with one width, else their box
    geometry (``geometry_features``); and which of the two it is."""
    widths = {None if p.features is None else p.features.shape[1] for p in parts if len(p.table)}
    if len(widths) == 1 and None not in widths:
        return np.concatenate([p.features for p in parts if len(p.table)]).astype(np.float32), "traced"
    if len(widths) > 1:
        logger.warning("ml-debugger: traced features differ between epochs or datasets; box geometry is used instead")
    return (geometry_features(units) if len(units) else None), "geometry"


def heatmaps(units: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The shared heatmaps with a background class -1 in the confusion matrix (a classification
    error counted once, by its object), class x error type, range bin x error type, and the
    bird's-eye-view grids of errors and of all units (cells of ``BEV_CELL`` m, by cell centre)."""
    out = build_heatmaps(units)
    cls_duplicate = (units["unit_type"] == "false_positive") & (units["error_type"] == "cls")
    out["confusion"] = build_heatmaps(units[~cls_duplicate])["confusion"]
    errors = units[~units["correct"]].rename(columns={"object_class": "class"})
    out["class_by_error_type"] = count(errors, ["dataset", "epoch", "class", "error_type"])
    out["range_by_error_type"] = count(errors, ["dataset", "epoch", "range_bin", "error_type"])
    out["points_by_error_type"] = count(errors, ["dataset", "epoch", "points_bin", "error_type"])
    grid = units.assign(
        y=(np.floor(units["cy"] / BEV_CELL) + 0.5) * BEV_CELL, x=(np.floor(units["cx"] / BEV_CELL) + 0.5) * BEV_CELL
    )
    out["bev_errors"] = count(grid[~grid["correct"]], ["dataset", "epoch", "y", "x"])
    out["bev_units"] = count(grid, ["dataset", "epoch", "y", "x"])
    return out


def _metrics_row(group: FrameGroup, metrics: dict[str, float], units: pd.DataFrame) -> dict:
    objects = units[units["unit_type"] == "object"]
    auroc, auprc = binary_scores(~objects["correct"].to_numpy(dtype=bool), objects["error_proba"].to_numpy(dtype=np.float64))
    return {
        "dataset": group.dataset, "epoch": group.epoch, "counts": group.boxes.n_frames, "objects": len(objects),
        "predictions": group.boxes.n_dt, **{k: float(metrics[k]) for k in NUSCENES_KEYS},
        "error_proba_auroc": auroc, "error_proba_auprc": auprc,
    }


def range_table(units: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, epoch and range bin: objects, found, recall, false positives and the mean TP
    errors of the found objects."""
    objects = units[units["unit_type"] == "object"]
    keys = ["dataset", "epoch", "range_bin"]
    table = objects.groupby(keys, sort=True).agg(
        objects=("correct", "size"), found=("correct", "sum"),
        trans_err=("trans_err", "mean"), orient_err=("orient_err", "mean"),
    )
    fps = units[units["unit_type"] == "false_positive"].groupby(keys, sort=True).size().rename("false_positives")
    table = table.join(fps, how="outer").fillna({"objects": 0, "found": 0, "false_positives": 0}).reset_index()
    table["recall"] = table["found"] / table["objects"].where(table["objects"] > 0)
    return table.astype({"epoch": np.int64, "objects": np.int64, "found": np.int64, "false_positives": np.int64})


class Detection3DEvaluation:
    """Implements ``TaskEvaluation`` for 3-D detection."""

    def make_config(self, thresholds: Mapping[str, Any]) -> Detection3DConfig:
        return Detection3DConfig.from_kwargs(**thresholds)

    def evaluate(self, table: pa.Table, config: Detection3DConfig, *, progress: bool = False) -> EvaluationOutput:
        data = load_detection3d_data(table)
        if not data.groups:
            raise NoDataError("no evaluable rows")
        nuscenes = NuScenesConfig(default_range=config.range_limit)
        evaluations, parts, per_class = [], [], []
        for group in data.groups:
            names = _class_names(data.label_names, group)
            evaluation = nuscenes_evaluate(group.boxes, class_names=names, config=nuscenes, match_threshold=config.match_distance)
            evaluations.append(evaluation)
            parts.append(build_units(group, evaluation, config))
            per_class.append(evaluation.per_class.assign(dataset=group.dataset, epoch=group.epoch))
        units = pd.concat([p.table for p in parts], ignore_index=True)
        features, feature_source = _stacked_features(parts, units)
        units, embedding = add_object_signals(
            units, features, config, error_features=ERROR_FEATURES,
            false_positive_recurrence=_fp_recurrence(config.match_distance),
        )
        units["hotspot_cluster"], hotspots = find_hotspots(units, embedding, config)
        units["category"] = assign_categories(units, config)
        codes = registered_codes(TASK)
        masks = detect_codes(units, config, codes)
        units["error_codes"] = codes_per_unit(masks)
        metrics = [
            _metrics_row(group, evaluation.metrics, units[(units["dataset"] == group.dataset) & (units["epoch"] == group.epoch)])
            for group, evaluation in zip(data.groups, evaluations)
        ]
        per_class_table = pd.concat(per_class, ignore_index=True)
        per_class_table = per_class_table[["dataset", "epoch", *(c for c in per_class_table.columns if c not in ("dataset", "epoch"))]]
        tables = {
            "metrics": pd.DataFrame(metrics, columns=["dataset", "epoch", *METRIC_COLUMNS]).astype({"epoch": np.int64}),
            "categories": category_ratios(units),
            "issues": issues_table(units, masks, config, codes),
            "hotspots": hotspots,
            "samples": units,
            "codes": code_catalog(codes),
            "per_class": per_class_table,
            "range": range_table(units),
            **{HEATMAP_PREFIX + name: frame for name, frame in heatmaps(units).items()},
        }
        meta = {
            "rows": len(units),
            "frames": sum(g.boxes.n_frames for g in data.groups),
            "stored_rows": data.stored_rows,
            "duplicates_removed": data.duplicates_removed,
            "features": feature_source,
            "label_names": {str(k): v for k, v in data.label_names.items()},
            "operating_scores": {f"{g.dataset}/{g.epoch}": p.operating_score for g, p in zip(data.groups, parts)},
        }
        return EvaluationOutput(tables=tables, meta=meta)


EVALUATION = Detection3DEvaluation()
