"""The six issue categories for 3-D detection units (the shared object rules, see
``ml_debugger.tasks._object_rules``); a found object is also fragile when its detection has a
nuScenes TP error above the configured limits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_debugger.tasks import _object_rules as rules
from ml_debugger.tasks.detection3d.config import Detection3DConfig


def barely_found(table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
    """Found by a low-scoring detection, or with a translation, scale, orientation or velocity error."""
    found = table["correct"].to_numpy(dtype=bool)
    tp_error = (
        (rules.column(table, "trans_err") >= config.translation_error_max)
        | (rules.column(table, "scale_err") >= config.scale_error_max)
        | (rules.column(table, "orient_err") >= config.orientation_error_max)
        | (rules.column(table, "vel_err") >= config.velocity_error_max)
    )
    return rules.low_found_score(table, config) | (found & tp_error)


def assign_categories(table: pd.DataFrame, config: Detection3DConfig) -> pd.Series:
    return rules.assign_categories(table, config, barely_found)
