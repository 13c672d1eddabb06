"""Trains PointPillars from MMDetection3D's shipped KITTI config (made tiny, with the hook in two
config lines) for 2 epochs on generated KITTI-like frames, then evaluates what the hook traced."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mmdet3d", reason="needs MMDetection3D: scripts/install-openmmlab.sh")
try:
    import mmcv.ops  # noqa: F401
except ImportError as exc:  # mmcv-lite, or an mmcv built without its ops
    pytest.skip(
        f"PointPillars needs mmcv's compiled ops ({exc}): scripts/install-openmmlab.sh", allow_module_level=True
    )

from mmengine.config import Config
from mmengine.runner import Runner

from ml_debugger.evaluator import Evaluator
from ml_debugger.store import LocalStore

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from kitti_like import SENSOR_HEIGHT, write_kitti_like  # noqa: E402

N_TRAIN, N_VAL = 4, 5


@pytest.mark.slow
def test_pointpillars_config_traces_every_val_frame_once_per_epoch(
    tmp_path: Path, mld_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boxes = write_kitti_like(tmp_path / "kitti", N_TRAIN, N_VAL)["val"]
    monkeypatch.setenv("MLD_KITTI_ROOT", f"{tmp_path / 'kitti'}/")
    cfg = Config.fromfile(HERE / "pointpillars_tiny_kitti.py")
    cfg.work_dir = str(tmp_path / "work")
    Runner.from_cfg(cfg).train()

    traces = LocalStore(mld_home).read_traces("pointpillars", "v1", None).to_pandas()
    assert traces.groupby("epoch")["input_id"].apply(sorted).to_dict() == {
        1: [str(i) for i in range(N_VAL)], 2: [str(i) for i in range(N_VAL)],
    }, "every validation frame once per epoch, named by its sample_idx"
    assert set(traces["dataset_type"]) == {"val"} and not traces["final_validation"].any()
    assert traces["global_step"].tolist() == [2] * N_VAL + [4] * N_VAL

    frame = traces[(traces["epoch"] == 2) & (traces["input_id"] == "0")].iloc[0]
    gt = np.stack(frame["gt_boxes"])
    expected = boxes[0][:, [0, 1, 2, 4, 3, 5, 6]].copy()  # [x, y, z, w=y_size, l=x_size, h, yaw]
    expected[:, 2] = -SENSOR_HEIGHT + expected[:, 5] / 2  # gravity centre
    order = np.argsort(gt[:, 0])
    np.testing.assert_allclose(gt[order], expected[np.argsort(expected[:, 0])], atol=1e-4)
    assert (np.asarray(frame["gt_num_points"]) >= 250).all(), "the frame's points were counted in its boxes"
    assert (frame["score_thresh"], frame["iou_thresh"], frame["max_detections"]) == pytest.approx((0.1, 0.01, 50))
    assert tuple(frame["pc_range"]) == pytest.approx((0, -10.24, -3, 20.48, 10.24, 1))
    assert list(frame["label_names"]) == ["Car"]
    assert traces["frame_features"].notna().all(), "BEV features of every frame, the first batch included"

    result = Evaluator("pointpillars", "v1").request_evaluation(n_epoch=None)
    assert result.summary_epochs == {"val": 2}
    assert set(result.get_samples()["epoch"]) == {1, 2}
