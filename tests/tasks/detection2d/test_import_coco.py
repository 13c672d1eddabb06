"""`mldebugger import coco`: two COCO files become an epoch whose metrics equal pycocotools' on them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml_debugger.evaluator import Evaluator
from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.importers.coco import import_coco
from ml_debugger.store import LocalStore
from ml_debugger.tasks.detection2d.detection_set import DetectionSet
from tests.tasks.detection2d.synthetic import coco_dicts, random_detection_set, run_pycocotools


def on_grid(data: DetectionSet) -> DetectionSet:
    """Boxes and areas on a quarter-pixel grid and float32 scores: exact in JSON, float32 and float64."""
    return DetectionSet(
        n_images=data.n_images, gt_image=data.gt_image, gt_boxes=np.round(data.gt_boxes * 4) / 4,
        gt_labels=data.gt_labels, gt_iscrowd=data.gt_iscrowd, gt_area=np.round(data.gt_area * 4) / 4,
        dt_image=data.dt_image, dt_boxes=np.round(data.dt_boxes * 4) / 4,
        dt_scores=data.dt_scores.astype(np.float32).astype(np.float64), dt_labels=data.dt_labels,
    )


def write(tmp_path: Path, data: DetectionSet) -> tuple[Path, Path]:
    dataset, results = coco_dicts(data)
    instances, detections = tmp_path / "instances.json", tmp_path / "results.json"
    instances.write_text(json.dumps(dataset))
    detections.write_text(json.dumps(results))
    return instances, detections


def test_the_cli_import_gives_pycocotools_numbers(tmp_path: Path, mld_home: Path) -> None:
    data = on_grid(random_detection_set(5))
    instances, detections = write(tmp_path, data)
    done = subprocess.run(
        [sys.executable, "-m", "ml_debugger.cli", "import", "coco", str(instances), str(detections),
         "--model", "imported", "--version", "v1"],
        capture_output=True, text=True, check=True,
    )
    assert f"Recorded {data.n_images} images" in done.stdout
    result = Evaluator("imported", "v1", store=LocalStore(mld_home)).request_evaluation()
    stats = result.metrics_summary().iloc[0]
    reference = run_pycocotools(data).stats
    keys = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large",
            "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]
    np.testing.assert_allclose(stats[keys].to_numpy(dtype=float), reference, rtol=0, atol=1e-9)
    units = result.get_samples()
    assert set(units["input_id"]) <= {f"{i}.jpg" for i in range(data.n_images)}
    assert result.meta["label_names"]["1"] == "1"


def test_results_naming_unknown_images_are_refused(tmp_path: Path, store: LocalStore) -> None:
    instances, detections = write(tmp_path, random_detection_set(6, n_images=3))
    results = json.loads(detections.read_text())
    results.append({"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5})
    detections.write_text(json.dumps(results))
    with pytest.raises(ConfigurationError, match="1 image ids that the instances file does not have"):
        import_coco(instances, detections, model_name="m", version_name="v", store=store)


def test_negative_box_sizes_are_refused(tmp_path: Path, store: LocalStore) -> None:
    instances, detections = write(tmp_path, random_detection_set(7, n_images=3))
    dataset = json.loads(instances.read_text())
    dataset["annotations"][0]["bbox"][2] = -4
    instances.write_text(json.dumps(dataset))
    with pytest.raises(TraceValidationError, match="negative width/height"):
        import_coco(instances, detections, model_name="m", version_name="v", store=store)
