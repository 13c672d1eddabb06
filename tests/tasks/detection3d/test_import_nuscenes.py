"""`mldebugger import nuscenes`: submission-format files become an epoch whose metrics equal the devkit's on them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pyquaternion import Quaternion

from ml_debugger.evaluator import Evaluator
from ml_debugger.exceptions import ConfigurationError
from ml_debugger.importers.nuscenes import import_nuscenes, quaternion_yaw
from ml_debugger.store import LocalStore
from ml_debugger.tasks.detection3d.frame_set import FrameSet
from tests.tasks.detection3d.synthetic import CLASS_NAMES, random_frame_set, run_devkit

MEAN_KEYS = {"mate": "trans_err", "mase": "scale_err", "maoe": "orient_err", "mave": "vel_err", "maae": "attr_err"}


def on_grid(frames: FrameSet) -> FrameSet:
    """Positions, ego and sizes on a 1/8 m grid and float32 scores and velocities: exact after moving to the ego."""
    grid = lambda a: np.round(np.asarray(a, np.float64) * 8) / 8  # noqa: E731
    f32 = lambda a: np.asarray(a, np.float32).astype(np.float64)  # noqa: E731
    return FrameSet(
        n_frames=frames.n_frames, gt_frame=frames.gt_frame, gt_boxes=grid(frames.gt_boxes), gt_labels=frames.gt_labels,
        gt_velocities=f32(frames.gt_velocities), gt_num_points=frames.gt_num_points, gt_attributes=frames.gt_attributes,
        dt_frame=frames.dt_frame, dt_boxes=grid(frames.dt_boxes), dt_scores=f32(frames.dt_scores),
        dt_labels=frames.dt_labels, dt_velocities=f32(frames.dt_velocities), dt_attributes=frames.dt_attributes,
        ego_xy=grid(frames.ego_xy),
    )


def submission(frames: FrameSet, side: str) -> dict:
    results: dict[str, list[dict]] = {str(f): [] for f in range(frames.n_frames)}
    for row in range(len(getattr(frames, f"{side}_frame"))):
        frame = int(getattr(frames, f"{side}_frame")[row])
        cx, cy, cz, w, l, h, yaw = getattr(frames, f"{side}_boxes")[row].tolist()
        velocity = getattr(frames, f"{side}_velocities")[row].tolist()
        box = {
            "sample_token": str(frame), "translation": [cx, cy, cz], "size": [w, l, h],
            "rotation": Quaternion(axis=[0, 0, 1], radians=yaw).elements.tolist(),
            "velocity": [None if np.isnan(v) else v for v in velocity],
            "detection_name": CLASS_NAMES[int(getattr(frames, f"{side}_labels")[row])],
            "attribute_name": str(getattr(frames, f"{side}_attributes")[row] or ""),
        }
        if side == "gt":
            box["num_pts"] = int(frames.gt_num_points[row])
            box["ego_translation"] = [*frames.ego_xy[frame].tolist(), 0.0]
        else:
            box["detection_score"] = float(frames.dt_scores[row])
        results[str(frame)].append(box)
    if side == "dt":
        return {"meta": {"use_lidar": True}, "results": {token: boxes for token, boxes in results.items() if boxes}}
    egos = {str(f): [*frames.ego_xy[f].tolist(), 0.0] for f in range(frames.n_frames)}
    return {"results": results, "ego_translations": egos}


def write(tmp_path: Path, frames: FrameSet) -> tuple[Path, Path]:
    gt, pred = tmp_path / "gt.json", tmp_path / "results_nusc.json"
    gt.write_text(json.dumps(submission(frames, "gt")).replace("NaN", "null"))
    pred.write_text(json.dumps(submission(frames, "dt")))
    return gt, pred


def test_quaternion_yaw_is_the_devkits() -> None:
    from nuscenes.eval.common.utils import quaternion_yaw as devkit_yaw

    yaws = np.array([-3.1, -1.0, 0.0, 0.5, 2.9])
    quaternions = np.array([Quaternion(axis=[0, 0, 1], radians=y).elements for y in yaws])
    np.testing.assert_allclose(quaternion_yaw(quaternions), [devkit_yaw(Quaternion(q)) for q in quaternions], atol=1e-12)


def test_the_cli_import_gives_the_devkits_numbers(tmp_path: Path, mld_home: Path) -> None:
    frames = on_grid(random_frame_set(3))
    gt, pred = write(tmp_path, frames)
    done = subprocess.run(
        [sys.executable, "-m", "ml_debugger.cli", "import", "nuscenes", str(gt), str(pred), "--model", "nus", "--version", "v1"],
        capture_output=True, text=True, check=True,
    )
    assert f"Recorded {frames.n_frames} samples" in done.stdout
    row = Evaluator("nus", "v1", store=LocalStore(mld_home)).request_evaluation().metrics_summary().iloc[0]
    summary = run_devkit(frames, CLASS_NAMES)[0].serialize()
    np.testing.assert_allclose(row["map"], summary["mean_ap"], rtol=0, atol=1e-9)
    for key, name in MEAN_KEYS.items():
        # Headings go through a quaternion and float32: orientation errors agree to float32 precision.
        np.testing.assert_allclose(row[key], summary["tp_errors"][name], rtol=0, atol=1e-6)
    np.testing.assert_allclose(row["nds"], summary["nd_score"], rtol=0, atol=1e-6)


def test_predictions_for_unknown_samples_are_refused(tmp_path: Path, store: LocalStore) -> None:
    gt, pred = write(tmp_path, on_grid(random_frame_set(4, n_frames=3)))
    data = json.loads(pred.read_text())
    data["results"]["nowhere"] = []
    pred.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError, match="samples the ground truth does not have"):
        import_nuscenes(gt, pred, model_name="m", version_name="v", store=store)
