"""End-to-end runs of the example scripts (the root conftest gives each an empty, offline store)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from ml_debugger.store import open_store


def _import_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"mld_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_script() -> Callable[[Path], ModuleType]:
    """Import an example script by its path, as a user would run it."""
    return _import_script


def traced_rows(model_name: str, version_name: str) -> pd.DataFrame:
    """Every committed trace row of a model version, as pandas."""
    return open_store().read_traces(model_name, version_name, None).to_pandas()


def pycocotools_map(rows: pd.DataFrame) -> float:
    """pycocotools' COCOeval (bbox) mAP of the recorded ground truth and predictions of ``rows``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(box) -> list[float]:
        x1, y1, x2, y2 = (float(v) for v in box)
        return [x1, y1, x2 - x1, y2 - y1]

    annotations, detections, labels = [], [], set()
    for image, row in enumerate(rows.itertuples()):
        for box, label in zip(row.gt_boxes, row.gt_labels):
            w, h = xywh(box)[2:]
            annotations.append({"id": len(annotations) + 1, "image_id": image, "category_id": int(label),
                                "bbox": xywh(box), "area": w * h, "iscrowd": 0})
            labels.add(int(label))
        for box, score, label in zip(row.pred_boxes, row.pred_scores, row.pred_labels):
            detections.append({"image_id": image, "category_id": int(label), "bbox": xywh(box), "score": float(score)})
            labels.add(int(label))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": i} for i in range(len(rows))], "annotations": annotations,
                      "categories": [{"id": label} for label in sorted(labels)]}
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(detections), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


@pytest.fixture
def check_detection_run() -> Callable[..., pd.DataFrame]:
    """`detection_run_checks`, for the detection examples' tests."""
    return detection_run_checks


def detection_run_checks(model_name: str, version_name: str, n_val: int, epochs: int = 2) -> pd.DataFrame:
    """What every detection example asserts: each validation image traced once per epoch, and the
    evaluation's mAP per epoch equal to pycocotools on the same recorded boxes. Returns the rows."""
    from ml_debugger.evaluator import Evaluator

    rows = traced_rows(model_name, version_name)
    val = rows[rows["dataset_type"] == "val"]
    assert val.groupby("epoch").size().to_dict() == {e: n_val for e in range(epochs)}
    for _, epoch_rows in val.groupby("epoch"):
        assert sorted(epoch_rows["input_id"].astype(int)) == list(range(n_val)), "each image once per epoch"
    result = Evaluator(model_name, version_name).request_evaluation(n_epoch=None)
    metrics = result.metrics_summary(by_epoch=True).set_index("epoch")
    for epoch, epoch_rows in val.groupby("epoch"):
        assert sum(len(b) for b in epoch_rows["pred_boxes"]) > 0, f"epoch {epoch} recorded no detections"
        assert metrics.loc[epoch, "map"] == pytest.approx(pycocotools_map(epoch_rows.sort_values("input_id")), abs=1e-6)
    return rows
