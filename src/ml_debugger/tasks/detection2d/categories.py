"""The six issue categories for detection units, and the rules they are built from.

A correct unit is a found object: ``stable_coverage`` unless it is fragile
(``operational_coverage``: found by a detection whose score is in the lowest ``score_margin``
share of the range from the operating score to 1, or overlapping it with an IoU below ``fragile_iou``, or out of coverage, near
an error cluster, or found and lost across epochs). A wrong unit (a missed object or a false
positive) takes the first of:

1. ``aleatoric_hotspot``: the annotation is the likely cause: a suspected missing annotation (a
   confident background false positive, far from every object, made again in at least
   ``min_recurrence`` epochs) or a suspected wrong label (an object confidently detected as
   another class at the right place, again in ``min_recurrence`` epochs);
2. ``critical_hotspot``: confidently wrong: a false positive scoring at least
   ``confident_threshold``, or an object that a detection of another class at its place scores
   that high for;
3. ``hotspot``: inside a dense cluster of errors in feature space;
4. ``recessive_hotspot``: every other error (isolated misses, detections below the operating score).

The rules take the unit table and return boolean arrays; a rule whose signal is NaN is False.
The error codes reuse them, so a unit's codes explain its category.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_debugger.evaluator.analysis import categories as shared
from ml_debugger.tasks.detection2d.config import DetectionConfig


def _col(table: pd.DataFrame, name: str) -> np.ndarray:
    return table[name].to_numpy(dtype=np.float64, na_value=np.nan)


def is_object(table: pd.DataFrame) -> np.ndarray:
    return (table["unit_type"] == "object").to_numpy()


def error_type(table: pd.DataFrame, *types: str) -> np.ndarray:
    return table["error_type"].isin(types).to_numpy()


def confident(table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
    """The unit's detection (its own, or the one confusing a missed object) scores >= ``confident_threshold``."""
    return _col(table, "score") >= config.confident_threshold


def confidently_wrong(table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
    """A confident false positive, or an object confidently detected as another class."""
    return confident(table, config) & (~is_object(table) | error_type(table, "cls"))


def suspected_missing_annotation(table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
    """A confident background false positive made in at least ``min_recurrence`` epochs."""
    return (
        ~is_object(table) & error_type(table, "bkg") & confident(table, config)
        & (_col(table, "recurrence") >= config.min_recurrence)
    )


def suspected_wrong_label(table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
    """An object confidently detected as another class at the right place in at least
    ``min_recurrence`` epochs."""
    return (
        is_object(table) & error_type(table, "cls") & confident(table, config)
        & (_col(table, "recurrence") >= config.min_recurrence)
    )


def data_caused(table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
    return suspected_missing_annotation(table, config) | suspected_wrong_label(table, config)


def unstable(table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
    """Found and lost at least ``unstable_min_flips`` times, or lost ``unstable_min_forgetting`` times."""
    return (_col(table, "flips") >= config.unstable_min_flips) | (
        _col(table, "forgetting_events") >= config.unstable_min_forgetting
    )


def barely_found(table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
    """Found by a detection whose score lies in the lowest ``score_margin`` share of the range from
    the operating score to 1, or found loosely (IoU below ``fragile_iou``)."""
    found = table["correct"].to_numpy(dtype=bool)
    operating = _col(table, "operating_score")
    low = _col(table, "score") < operating + config.score_margin * np.clip(1.0 - operating, 0.0, None)
    return found & (low | (_col(table, "iou") < config.fragile_iou))


def fragile(table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
    return (
        barely_found(table, config)
        | shared.out_of_coverage(table, config)
        | shared.near_error_cluster(table, config)
        | unstable(table, config)
    )


def assign_categories(table: pd.DataFrame, config: DetectionConfig) -> pd.Series:
    """The category of every unit (a ``str`` Series on ``table.index``)."""
    wrong = ~table["correct"].to_numpy(dtype=bool)
    conditions = [
        ~wrong & ~fragile(table, config),
        ~wrong,
        wrong & data_caused(table, config),
        wrong & confidently_wrong(table, config),
        wrong & shared.near_error_cluster(table, config),
    ]
    choices = ["stable_coverage", "operational_coverage", "aleatoric_hotspot", "critical_hotspot", "hotspot"]
    values = np.select(conditions, choices, default="recessive_hotspot")
    return pd.Series(values, index=table.index, name="category", dtype=str)
