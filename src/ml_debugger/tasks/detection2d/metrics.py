"""The metric tables of a detection evaluation: COCO's 12 numbers per dataset and epoch, AP per
class, and TIDE's error counts and dAPs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_debugger.evaluator.analysis.metrics import binary_scores
from ml_debugger.tasks.detection2d.coco_metrics import CocoEvaluation
from ml_debugger.tasks.detection2d.loading import ImageGroup
from ml_debugger.tasks.detection2d.tide import ERROR_TYPES, SPECIAL_ERROR_TYPES, TideAnalysis

COCO_KEYS = (
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
)
METRIC_COLUMNS = ("counts", "objects", "predictions", *COCO_KEYS, "error_proba_auroc", "error_proba_auprc")
PER_CLASS_COLUMNS = ("dataset", "epoch", "label", "name", "n_gt", "n_dt", "ap", "ap_50", "ap_75", "ar_100")
TIDE_COLUMNS = ("dataset", "epoch", "error_type", "count", "dap")


def metrics_row(group: ImageGroup, coco: CocoEvaluation, units: pd.DataFrame) -> dict:
    """``dataset, epoch`` and ``METRIC_COLUMNS`` of one group; error_proba scored over its objects."""
    objects = units[units["unit_type"] == "object"]
    auroc, auprc = binary_scores(
        ~objects["correct"].to_numpy(dtype=bool), objects["error_proba"].to_numpy(dtype=np.float64)
    )
    return {
        "dataset": group.dataset,
        "epoch": group.epoch,
        "counts": group.boxes.n_images,
        "objects": int((~coco.matching.gt_ignore).sum()),
        "predictions": group.boxes.n_dt,
        **{key: float(coco.stats[key]) for key in COCO_KEYS},
        "error_proba_auroc": auroc,
        "error_proba_auprc": auprc,
    }


def metrics_table(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["dataset", "epoch", *METRIC_COLUMNS])
    counts = {"epoch": np.int64, "counts": np.int64, "objects": np.int64, "predictions": np.int64}
    return frame.astype({**counts, **{k: np.float64 for k in (*COCO_KEYS, "error_proba_auroc", "error_proba_auprc")}})


def per_class_rows(group: ImageGroup, coco: CocoEvaluation, names: dict[int, str]) -> pd.DataFrame:
    frame = coco.per_class.copy()
    frame = frame.rename(columns={c: "ar_100" for c in frame.columns if c.startswith("ar_")})
    frame.insert(0, "dataset", group.dataset)
    frame.insert(1, "epoch", group.epoch)
    frame.insert(3, "name", [names.get(int(label), "") for label in frame["label"]])
    return frame[list(PER_CLASS_COLUMNS)]


def tide_rows(group: ImageGroup, tide: TideAnalysis) -> pd.DataFrame:
    types = (*ERROR_TYPES, *SPECIAL_ERROR_TYPES)
    return pd.DataFrame({
        "dataset": group.dataset,
        "epoch": group.epoch,
        "error_type": list(types),
        "count": [tide.counts.get(t, 0) if t in ERROR_TYPES else -1 for t in types],
        "dap": [float(tide.dap[t]) for t in types],
    })


def concat(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    """Frames stacked, or an empty frame with ``columns``."""
    if not frames:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(frames, ignore_index=True).astype({"epoch": np.int64})
