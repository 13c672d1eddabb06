"""Trains RetinaNet from MMDetection's shipped COCO config (made tiny, with the hook in two config
lines) for 2 epochs on generated COCO-layout images, then evaluates what the hook traced."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mmdet", reason="needs MMDetection: pip install 'ml-debugger[mmengine]'")
try:
    import mmcv.ops  # noqa: F401
except ImportError as exc:  # mmcv-lite, or an mmcv built without its ops
    pytest.skip(
        f"RetinaNet needs mmcv's compiled ops ({exc}): scripts/install-openmmlab.sh", allow_module_level=True
    )

from mmengine.config import Config
from mmengine.runner import Runner

from ml_debugger.evaluator import Evaluator
from ml_debugger.store import LocalStore

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from coco_like import SIZE, write_coco_like  # noqa: E402

N_TRAIN, N_VAL = 8, 5


@pytest.mark.slow
def test_retinanet_config_traces_every_val_image_once_per_epoch(
    tmp_path: Path, mld_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boxes = write_coco_like(tmp_path / "coco", N_TRAIN, N_VAL)["val"]
    monkeypatch.setenv("MLD_COCO_ROOT", f"{tmp_path / 'coco'}/")
    cfg = Config.fromfile(HERE / "retinanet_tiny_coco.py")
    cfg.work_dir = str(tmp_path / "work")
    cfg.custom_hooks[0]["previews"] = True  # as a user would add to the config's hook
    Runner.from_cfg(cfg).train()

    traces = LocalStore(mld_home).read_traces("retinanet", "v1", None).to_pandas()
    ids = sorted(str(i) for i in boxes)
    assert traces.groupby("epoch")["input_id"].apply(sorted).to_dict() == {1: ids, 2: ids}, (
        "every validation image once per epoch, named by its COCO image id"
    )
    for _, row in traces[traces["epoch"] == 2].iterrows():
        xywh = np.asarray(boxes[int(row["input_id"])])
        expected = np.column_stack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]])
        np.testing.assert_allclose(np.stack(row["gt_boxes"]), expected, atol=1e-3)  # back in the original image
        assert (row["image_width"], row["image_height"]) == SIZE
    first = traces.iloc[0]
    assert (first["score_thresh"], first["iou_thresh"], first["max_detections"]) == pytest.approx((0.05, 0.5, 100))
    assert list(first["label_names"]) == ["box"]

    result = Evaluator("retinanet", "v1").request_evaluation(n_epoch=None)
    assert result.summary_epochs == {"val": 2}
    assert set(result.get_samples()["epoch"]) == {1, 2}
    previews = result.tables["previews"]
    assert sorted(previews["input_id"]) == ids
    image = Image.open(io.BytesIO(previews["preview"].iloc[0]))
    assert image.format == "JPEG" and max(image.size) <= 128
