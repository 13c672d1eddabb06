"""The six issue categories for 2-D detection units: the shared object rules
(``ml_debugger.tasks._object_rules``), where a found object is also fragile when its detection
overlaps it loosely (IoU below ``fragile_iou``).

A found object is ``stable_coverage`` unless it is fragile (``operational_coverage``: barely
found, out of coverage, near an error cluster, or found and lost across epochs). A missed object
or a false positive takes the first of ``aleatoric_hotspot`` (a suspected missing annotation or
wrong label, recurring in ``min_recurrence`` epochs), ``critical_hotspot`` (confidently wrong),
``hotspot`` (near an error cluster) and ``recessive_hotspot``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_debugger.tasks import _object_rules as rules
from ml_debugger.tasks.detection2d.config import DetectionConfig


def barely_found(table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
    """Found by a detection whose score lies in the lowest ``score_margin`` share of the range from
    the operating score to 1, or found loosely (IoU below ``fragile_iou``)."""
    loose = table["correct"].to_numpy(dtype=bool) & (rules.column(table, "iou") < config.fragile_iou)
    return rules.low_found_score(table, config) | loose


def assign_categories(table: pd.DataFrame, config: DetectionConfig) -> pd.Series:
    """The category of every unit (a ``str`` Series on ``table.index``)."""
    return rules.assign_categories(table, config, barely_found)
