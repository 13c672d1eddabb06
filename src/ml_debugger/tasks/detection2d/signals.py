"""Per-unit signals of a detection evaluation beyond the matching: feature-space neighbours,
the cross-fitted error probability, dynamics of each object across epochs, and recurrence.

Columns added to the unit table:

- ``log_area``, ``aspect_ratio`` (``log(w / h)``): the box's shape;
- the neighbour signals of the classification analysis (``knn_error_rate``,
  ``knn_label_agreement``, ``knn_distance``, ``coverage_percentile``) over the units' features;
- ``error_proba``: for an object, the cross-fitted probability that it is missed, learned from
  ``DETECTION_ERROR_FEATURES``; 1 for a false positive (an error by definition);
- ``n_epochs_seen``, ``correct_fraction``, ``flips``, ``forgetting_events``: an object's history
  over the traced epochs (found, then lost: a forgetting event); NaN for false positives and with
  a single epoch;
- ``recurrence``: in how many evaluated epochs the same error was made: for a false positive,
  a false positive of the same class on the same image overlapping it (IoU >= ``iou_threshold``);
  for an object, the same error type with the same predicted class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_debugger.evaluator.analysis.error_proba import cross_fitted_error_proba
from ml_debugger.evaluator.analysis.neighbors import NEIGHBOR_COLUMNS, embed_per_epoch, neighbor_signals
from ml_debugger.tasks.detection2d.config import DetectionConfig
from ml_debugger.tasks.detection2d.detection_set import DetectionSet
from ml_debugger.tasks.detection2d.matching import overlapping_pairs

DETECTION_ERROR_FEATURES = (
    "score", "log_area", "aspect_ratio", "crowding", "knn_error_rate", "knn_distance", "coverage_percentile",
)
"""What the error model reads: the best detection's score and the object's own properties."""
DYNAMICS_COLUMNS = ("n_epochs_seen", "correct_fraction", "flips", "forgetting_events")


def add_signals(table: pd.DataFrame, features: np.ndarray | None, config: DetectionConfig) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The unit table with every signal column, and the feature embedding (None without features)."""
    width = (table["x2"] - table["x1"]).to_numpy(dtype=np.float64)
    height = (table["y2"] - table["y1"]).to_numpy(dtype=np.float64)
    table = table.assign(
        log_area=np.log1p(table["area"].to_numpy(dtype=np.float64)),
        aspect_ratio=np.log(np.maximum(width, 1e-6) / np.maximum(height, 1e-6)),
    )
    correct = table["correct"].to_numpy(dtype=bool)
    embedding = None
    if features is not None and len(table):
        embedding = embed_per_epoch(features, table, config.n_components, config.random_state)
        neighbors = neighbor_signals(
            embedding, table, correct, reference_dataset=config.reference_dataset,
            k_neighbors=config.k_neighbors, random_state=config.random_state,
        )
    else:
        neighbors = pd.DataFrame(np.nan, index=table.index, columns=list(NEIGHBOR_COLUMNS))
    table = pd.concat([table, neighbors], axis=1)  # same index: a join without the merge machinery
    table["error_proba"] = _error_proba(table, config)
    table = pd.concat([table, object_dynamics(table)], axis=1)
    table["recurrence"] = recurrence(table, config)
    return table, embedding


def _error_proba(table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
    out = np.ones(len(table))
    objects = np.flatnonzero(table["unit_type"].to_numpy() == "object")
    signals = table[list(DETECTION_ERROR_FEATURES)]  # what the model reads, and no other column
    correct = table["correct"].to_numpy(dtype=bool)
    input_id = table["input_id"].to_numpy()
    score = table["score"].to_numpy(dtype=np.float64)
    dataset = table["dataset"].iloc[objects].reset_index(drop=True)
    for rows in dataset.groupby(dataset, sort=True).indices.values():
        positions = objects[rows]
        out[positions] = cross_fitted_error_proba(
            signals.iloc[positions], ~correct[positions], input_id[positions],
            n_folds=config.n_folds, random_state=config.random_state, features=DETECTION_ERROR_FEATURES,
            fallback=1.0 - score[positions],
        )
    return out


def object_dynamics(table: pd.DataFrame) -> pd.DataFrame:
    """``DYNAMICS_COLUMNS`` of each object over its traced epochs (see the module doc)."""
    out = pd.DataFrame(np.nan, index=table.index, columns=list(DYNAMICS_COLUMNS))
    is_object = (table["unit_type"] == "object").to_numpy()
    if not is_object.any() or table["epoch"][is_object].nunique() < 2:
        return out
    objects = table.loc[is_object, ["dataset", "input_id", "unit_id", "epoch", "correct"]]
    ordered = objects.sort_values("epoch", kind="stable")
    keys = ["dataset", "input_id", "unit_id"]
    correct = ordered["correct"].astype(bool)
    previous = correct.groupby([ordered[k] for k in keys], sort=False).shift()
    has_previous = previous.notna()
    changed = has_previous & (previous.astype("boolean") != correct)
    forgot = has_previous & previous.astype("boolean").fillna(False) & ~correct
    grouped = pd.DataFrame({
        "seen": 1, "correct": correct.astype(float), "changed": changed.astype(float), "forgot": forgot.astype(float),
    }, index=ordered.index).groupby([ordered[k] for k in keys], sort=False)
    seen = grouped["seen"].transform("sum")
    out.loc[ordered.index, "n_epochs_seen"] = seen
    several = seen >= 2
    out.loc[ordered.index[several], "correct_fraction"] = grouped["correct"].transform("mean")[several]
    out.loc[ordered.index[several], "flips"] = grouped["changed"].transform("sum")[several]
    out.loc[ordered.index[several], "forgetting_events"] = grouped["forgot"].transform("sum")[several]
    return out


def recurrence(table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
    """In how many evaluated epochs each error recurs (1 = only its own; 0 for correct units)."""
    out = np.where(table["correct"].to_numpy(dtype=bool), 0, 1).astype(np.int64)
    objects = (table["unit_type"] == "object").to_numpy() & ~table["correct"].to_numpy(dtype=bool)
    if objects.any():
        keys = ["dataset", "input_id", "unit_id", "error_type", "prediction"]
        errors = table.loc[objects, [*keys, "epoch"]]
        out[objects] = errors.groupby(keys, sort=False)["epoch"].transform("nunique").to_numpy()
    fps = np.flatnonzero((table["unit_type"] == "false_positive").to_numpy())
    if len(fps) and table["epoch"].nunique() > 1:
        columns = ["dataset", "input_id", "epoch", "prediction", "x1", "y1", "x2", "y2"]
        out[fps] = _false_positive_recurrence(table[columns].iloc[fps], config.iou_threshold)
    return out


def _false_positive_recurrence(fps: pd.DataFrame, iou_threshold: float) -> np.ndarray:
    """For each false positive, the number of epochs with an overlapping one of its class on its image."""
    image = pd.factorize(pd.MultiIndex.from_frame(fps[["dataset", "input_id"]]))[0]
    boxes = fps[["x1", "y1", "x2", "y2"]].to_numpy(dtype=np.float64)
    labels = fps["prediction"].to_numpy(dtype=np.int64)
    both = DetectionSet(
        n_images=int(image.max()) + 1, gt_image=image, gt_boxes=boxes, gt_labels=labels,
        dt_image=image, dt_boxes=boxes, dt_scores=np.zeros(len(fps)), dt_labels=labels,
    )
    pairs = overlapping_pairs(both)
    epoch = fps["epoch"].to_numpy()
    keep = (labels[pairs.dt] == labels[pairs.gt]) & (pairs.iou >= iou_threshold) & (epoch[pairs.dt] != epoch[pairs.gt])
    other_epochs = pd.DataFrame({"unit": pairs.dt[keep], "epoch": epoch[pairs.gt[keep]]}).drop_duplicates()
    counts = np.bincount(other_epochs["unit"].to_numpy(dtype=np.int64), minlength=len(fps))
    return 1 + counts
