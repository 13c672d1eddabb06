"""Category rules that the detection tasks share (see each task's ``categories`` module).

They read the unit table (``unit_type``, ``correct``, ``error_type``, ``score``,
``recurrence``, ``flips``, ``forgetting_events``) and a config with ``confident_threshold``,
``min_recurrence``, ``unstable_min_flips`` and ``unstable_min_forgetting``; a rule whose signal
is NaN is False.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ml_debugger.evaluator.analysis import categories as shared


def column(table: pd.DataFrame, name: str) -> np.ndarray:
    return table[name].to_numpy(dtype=np.float64, na_value=np.nan)


def is_object(table: pd.DataFrame) -> np.ndarray:
    return (table["unit_type"] == "object").to_numpy()


def error_type(table: pd.DataFrame, *types: str) -> np.ndarray:
    return table["error_type"].isin(types).to_numpy()


def wrong(table: pd.DataFrame) -> np.ndarray:
    return ~table["correct"].to_numpy(dtype=bool)


def confident(table: pd.DataFrame, config: Any) -> np.ndarray:
    """The unit's detection (its own, or the one confusing a missed object) scores >= ``confident_threshold``."""
    return column(table, "score") >= config.confident_threshold


def confidently_wrong(table: pd.DataFrame, config: Any) -> np.ndarray:
    """A confident false positive, or an object confidently detected as another class."""
    return confident(table, config) & (~is_object(table) | error_type(table, "cls"))


def suspected_missing_annotation(table: pd.DataFrame, config: Any) -> np.ndarray:
    """A confident background false positive made in at least ``min_recurrence`` epochs."""
    return (
        ~is_object(table) & error_type(table, "bkg") & confident(table, config)
        & (column(table, "recurrence") >= config.min_recurrence)
    )


def suspected_wrong_label(table: pd.DataFrame, config: Any) -> np.ndarray:
    """An object confidently detected as another class at its place in at least ``min_recurrence`` epochs."""
    return (
        is_object(table) & error_type(table, "cls") & confident(table, config)
        & (column(table, "recurrence") >= config.min_recurrence)
    )


def unstable(table: pd.DataFrame, config: Any) -> np.ndarray:
    """Found and lost at least ``unstable_min_flips`` times, or lost ``unstable_min_forgetting`` times."""
    return (column(table, "flips") >= config.unstable_min_flips) | (
        column(table, "forgetting_events") >= config.unstable_min_forgetting
    )


def low_found_score(table: pd.DataFrame, config: Any) -> np.ndarray:
    """Found by a detection whose score lies in the lowest ``score_margin`` share of the range
    from the operating score to 1."""
    operating = column(table, "operating_score")
    low = column(table, "score") < operating + config.score_margin * np.clip(1.0 - operating, 0.0, None)
    return table["correct"].to_numpy(dtype=bool) & low


def assign_categories(
    table: pd.DataFrame, config: Any, barely_found: Callable[[pd.DataFrame, Any], np.ndarray]
) -> pd.Series:
    """The category of every unit: a found object is ``stable_coverage`` unless ``barely_found``,
    out of coverage, near an error cluster or unstable (then ``operational_coverage``); an error
    is ``aleatoric_hotspot`` (suspected missing annotation or wrong label), else
    ``critical_hotspot`` (confidently wrong), else ``hotspot`` (near an error cluster), else
    ``recessive_hotspot``."""
    is_wrong = wrong(table)
    fragile = (
        barely_found(table, config)
        | shared.out_of_coverage(table, config)
        | shared.near_error_cluster(table, config)
        | unstable(table, config)
    )
    data_caused = suspected_missing_annotation(table, config) | suspected_wrong_label(table, config)
    conditions = [
        ~is_wrong & ~fragile,
        ~is_wrong,
        is_wrong & data_caused,
        is_wrong & confidently_wrong(table, config),
        is_wrong & shared.near_error_cluster(table, config),
    ]
    choices = ["stable_coverage", "operational_coverage", "aleatoric_hotspot", "critical_hotspot", "hotspot"]
    return pd.Series(np.select(conditions, choices, default="recessive_hotspot"), index=table.index, name="category", dtype=str)
