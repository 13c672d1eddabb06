"""Runs yolo_shapes.py's training (YOLOv8n from yaml, 2 epochs on CPU, every validation traced) and
evaluates what it traced against Ultralytics' own numbers.

How our mAP50-95 (COCO's, as pycocotools computes it) relates to the validator's ``metrics.box.map``:

1. Interpolation. Both average AP over IoU 0.50:0.95 and classes with ground truth, and match a
   detection to the best unclaimed object in score order. COCO samples the precision envelope at
   101 recall points (the highest precision at recall >= r) and averages; Ultralytics linearly
   interpolates its envelope (with sentinels (0, 1) and (1, 0)) at 101 points and integrates with
   ``np.trapz``. COCO also keeps the 100 best detections per image (Ultralytics all, up to
   ``max_det=300``). Ultralytics' sentinel precision 1 at recall 0, interpolated linearly to the
   first point, adds most where precision is low. On the same boxes the two differ by about 1/100
   of AP for a trained model; for this one, whose scores are nearly flat (2 epochs from scratch),
   by up to 0.02 (measured: 0.010 and 0.017): TOLERANCE below.
2. Clipping. Ultralytics 8.4 scores boxes in the letterboxed input without clipping them; we record
   them in original pixels clipped to the image (as ``ops.scale_boxes``, its COCO-json path and its
   predictor do). Clipping never lowers an IoU with an object inside the image, so the validator's
   number can only be lower. A model trained for two epochs from scratch still predicts boxes far
   larger than the image (its box head starts at 7.5 strides per side), so here the validator's
   own number is near 0 while the clipped boxes overlap the large shapes.

The test therefore checks (1) against Ultralytics' own metric code run on the traced rows
(``match_predictions`` + ``DetMetrics``), and (2) as an inequality against the validator's number.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ultralytics")

from ml_debugger.evaluator import Evaluator
from ml_debugger.store import LocalStore

N_VAL = 16
TOLERANCE = 0.025  # the interpolations on flat, low-precision curves (see the module doc)


def ultralytics_map(rows: pd.DataFrame, tmp_path: Path) -> float:
    """mAP50-95 of the traced rows by Ultralytics' own matching and AP code."""
    import torch
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils.metrics import DetMetrics, box_iou

    validator = DetectionValidator(args={"project": str(tmp_path), "name": "recompute"})
    metrics = DetMetrics()
    for _, row in rows.iterrows():
        gt = torch.tensor(np.stack(row["gt_boxes"]) if len(row["gt_boxes"]) else np.zeros((0, 4)), dtype=torch.float32)
        pred = torch.tensor(np.stack(row["pred_boxes"]) if len(row["pred_boxes"]) else np.zeros((0, 4)),
                            dtype=torch.float32)
        order = np.argsort(-row["pred_scores"], kind="stable")
        pred, scores, labels = pred[order], row["pred_scores"][order], row["pred_labels"][order]
        gt_cls = np.asarray(row["gt_labels"], dtype=np.float64)
        tp = np.zeros((len(pred), 10), dtype=bool)
        if len(gt) and len(pred):
            tp = validator.match_predictions(torch.tensor(labels), torch.tensor(gt_cls), box_iou(gt, pred)).numpy()
        metrics.update_stats({"tp": tp, "conf": scores, "pred_cls": labels.astype(np.float64), "target_cls": gt_cls,
                              "target_img": np.unique(gt_cls), "im_name": row["input_id"]})
    metrics.process()
    return float(metrics.box.map)


@pytest.mark.slow
def test_yolo_shapes_trains_traces_and_evaluates(load_script, tmp_path: Path, store: LocalStore) -> None:
    script = load_script(Path(__file__).with_name("yolo_shapes.py"))
    script.offline_ultralytics(Path(tempfile.mkdtemp(prefix="yolo-config-")))
    data = script.make_dataset(tmp_path / "data", n_train=16, n_val=N_VAL)
    final = script.train(data, tmp_path / "runs", "yolo-shapes", "v1", epochs=2)

    rows = store.read_traces("yolo-shapes", "v1", None).to_pandas()
    counts = rows.groupby(["dataset_type", "epoch", "final_validation"]).size().to_dict()
    # each epoch's validation once, and the final validation of best.pt at epoch 2, flagged
    assert counts == {("val", 0, False): N_VAL, ("val", 1, False): N_VAL, ("val", 2, True): N_VAL}
    assert all(rows.groupby("epoch")["input_id"].nunique() == N_VAL)
    assert sorted(rows.loc[rows["epoch"] == 0, "input_id"]) == [f"images/val/val_{i:03d}.png" for i in range(N_VAL)]
    assert rows["global_step"].tolist() == [2] * N_VAL + [4] * N_VAL * 2  # 2 batches of 8 per epoch
    assert list(rows["label_names"].iloc[0]) == list(script.CLASSES)
    for _, row in rows.iterrows():  # the ground truth the validator matched is the label file, in pixels
        labels = np.loadtxt(data.parent / row["input_id"].replace("images", "labels").replace(".png", ".txt"), ndmin=2)
        xyxy = np.concatenate([labels[:, 1:3] - labels[:, 3:] / 2, labels[:, 1:3] + labels[:, 3:] / 2], 1) * 80
        np.testing.assert_allclose(np.stack(row["gt_boxes"]), xyxy, atol=0.01)
        assert row["gt_labels"].tolist() == labels[:, 0].astype(int).tolist()

    result = Evaluator("yolo-shapes", "v1").request_evaluation(n_epoch=None)
    ours = result.tables["metrics"].set_index("epoch")["map"]
    validator = pd.read_csv(tmp_path / "runs" / "train" / "results.csv")["metrics/mAP50-95(B)"].tolist()
    validator.append(float(final.box.map))  # the final validation, which results.csv does not list
    for epoch in (0, 1, 2):
        traced = rows[rows["epoch"] == epoch].sort_values("input_id")
        recomputed = ultralytics_map(traced, tmp_path)
        assert abs(ours[epoch] - recomputed) <= TOLERANCE, (epoch, ours[epoch], recomputed)
        assert validator[epoch] <= recomputed + 1e-4, (epoch, validator[epoch], recomputed)
    assert ours[2] > 0, "the clipped boxes of the last epoch find some shapes"
