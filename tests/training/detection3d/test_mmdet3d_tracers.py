"""PointPillars and CenterPoint built from MMDetection3D's own configs, traced on generated clouds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from ml_debugger.exceptions import TraceValidationError
from ml_debugger.store import LocalStore
from ml_debugger.training import ObjectDetection3DTracer
from ml_debugger.training.detection3d import boxes_to_reference
from ml_debugger.training.detection3d._mmdet3d import data_batch
from ml_debugger.training.detection3d._points import frames_of, hash_frames
from tests.training.detection3d import models

ops = pytest.importorskip("mmcv.ops", reason="MMCV with ops is not installed")


def rows(store: LocalStore, name: str):
    return store.read_traces(name, "v1", None).to_pandas()


@pytest.fixture(scope="module")
def pointpillars():
    return models.pointpillars()


@pytest.fixture(scope="module")
def centerpoint():
    return models.centerpoint()


def car_targets(n_frames: int) -> list[dict]:
    box = torch.tensor([[8.0, 1.0, -0.8, 1.6, 3.9, 1.56, 0.3]])
    return [{"boxes_3d": box + i, "labels_3d": torch.tensor([0])} for i in range(n_frames)]


def test_pointpillars_is_recognised_with_its_own_settings(pointpillars, store) -> None:
    tracer = ObjectDetection3DTracer(pointpillars, model_name="pp", version_name="v1", store=store)
    assert type(tracer).__name__ == "PointPillarsTracer" and tracer.family == "PointPillars"
    # pointpillars_hv_secfpn_kitti.py test_cfg: score_thr=0.1, nms_thr=0.01, max_num=50
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_frame) == (0.1, 0.01, 50)
    assert tracer.pc_range == tuple(models.PP_RANGE) and tracer.n_classes == 1
    tracer.close()


def test_recorded_frames_are_the_models_own_output(pointpillars, store) -> None:
    clouds = [models.cloud(0), models.cloud(1, n=1500)]
    tracer = ObjectDetection3DTracer(pointpillars, model_name="pp", version_name="v1", store=store)
    output = tracer(clouds, car_targets(2), input_ids=["f0", "f1"], dataset_type="val")
    expected = pointpillars.test_step(data_batch(clouds))
    tracer.wait_for_save()
    recorded = rows(store, "pp")
    assert recorded["input_id"].tolist() == ["f0", "f1"]
    assert recorded["input_hash"].tolist() == hash_frames(frames_of(clouds)).tolist()
    for i, frame in enumerate(output):
        instances = expected[i].pred_instances_3d
        torch.testing.assert_close(frame.pred_instances_3d.bboxes_3d.tensor, instances.bboxes_3d.tensor)
        boxes, _ = boxes_to_reference(instances.bboxes_3d)
        assert len(boxes) > 0
        np.testing.assert_allclose(np.stack(recorded["pred_boxes"][i]), boxes, rtol=1e-6)
        np.testing.assert_allclose(recorded["pred_scores"][i], instances.scores_3d.numpy(), rtol=1e-6)
        # Counted on the gravity-centred boxes; MMCV counts on MMDetection3D's bottom-centred ones.
        inside = ops.points_in_boxes_cpu(clouds[i][None, :, :3], instances.bboxes_3d.tensor[None])
        assert recorded["pred_num_points"][i].tolist() == inside[0].sum(0).tolist()
        assert len(recorded["pred_features"][i]) == len(boxes) and len(recorded["pred_features"][i][0]) == 384
    gt_bottom = torch.tensor([[[8.0, 1.0, -0.8 - 0.78, 3.9, 1.6, 1.56, 0.3]]])  # the GT car as MMCV takes it
    assert recorded["gt_num_points"][0].tolist() == [
        int(ops.points_in_boxes_cpu(clouds[0][None, :, :3], gt_bottom).sum())
    ]
    assert recorded["gt_num_points"][0][0] > 0
    assert [len(f) for f in recorded["frame_features"]] == [384, 384]
    assert recorded[["score_thresh", "iou_thresh", "max_detections"]].iloc[0].tolist() == pytest.approx([0.1, 0.01, 50])
    np.testing.assert_allclose(recorded["pc_range"][0], models.PP_RANGE)


class GeneratedFrames(Dataset):
    """Fixed-size clouds with one car each: the default collate stacks them into (B, N, 4) and the
    targets into the reference's dict-of-lists format."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        target = {
            "boxes_3d": torch.tensor([[6.0 + i, -2.0, -0.8, 1.6, 3.9, 1.56, 0.1 * i]]),
            "labels_3d": torch.tensor([0]),
        }
        return models.cloud(10 + i), target, f"frame-{i}"


def test_the_reference_sample_runs_unchanged(pointpillars, store) -> None:
    model, device = pointpillars, torch.device("cpu")
    dataloader = DataLoader(GeneratedFrames(), batch_size=2)
    model.to(device)
    model.eval()
    tracer = ObjectDetection3DTracer(
        model,
        model_name="my_3d_od_model",
        version_name="v1",
        store=store,
    )
    # --- the reference page's loop, as written there (no torch.no_grad, no n_epoch) ---
    for points, targets, frame_ids in dataloader:
        points = points.to(device)
        _ = tracer(
            points,
            targets,
            input_ids=frame_ids,
            dataset_type="train",
        )
    tracer.wait_for_save()
    # ---
    recorded = rows(store, "my_3d_od_model")
    assert recorded["input_id"].tolist() == [f"frame-{i}" for i in range(4)]
    assert (recorded["epoch"] == 0).all() and (recorded["dataset_type"] == "train").all()
    np.testing.assert_allclose(np.stack(recorded["gt_boxes"][3]), [[9.0, -2.0, -0.8, 1.6, 3.9, 1.56, 0.3]], rtol=1e-6)
    assert all(len(n) == 1 and n[0] > 0 for n in recorded["gt_num_points"])


def test_the_reference_sample_evaluates(pointpillars, store, capsys) -> None:
    pytest.importorskip("ml_debugger.tasks.detection3d.evaluation", reason="the 3-D evaluation is not on this branch")
    from ml_debugger.evaluator import Evaluator

    tracer = ObjectDetection3DTracer(pointpillars, model_name="my_3d_od_model", version_name="v1", store=store)
    for points, targets, frame_ids in DataLoader(GeneratedFrames(), batch_size=2):
        _ = tracer(points, targets, input_ids=frame_ids, dataset_type="train")
    tracer.wait_for_save()
    result = Evaluator(model_name="my_3d_od_model", version_name="v1").request_evaluation()
    result.get_summary()
    assert "nds" in capsys.readouterr().out


def test_explicit_thresholds_filter_what_is_recorded(pointpillars, store) -> None:
    clouds = [models.cloud(3)]
    expected = pointpillars.test_step(data_batch(clouds))[0].pred_instances_3d
    tracer = ObjectDetection3DTracer(
        pointpillars, "pp_strict", "v1", iou_thresh=0.005, max_detections_per_frame=5, store=store
    )
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_frame) == (0.1, 0.005, 5)
    tracer(clouds, car_targets(1), dataset_type="val")
    tracer.wait_for_save()
    recorded = rows(store, "pp_strict")
    scores = recorded["pred_scores"][0]
    assert len(scores) == 5
    assert min(scores) >= np.sort(expected.scores_3d.numpy())[-5] - 1e-6  # the best five
    with pytest.warns(UserWarning, match=r"score_thresh=0.05 is below the model's own score threshold 0.1"):
        loose = ObjectDetection3DTracer(pointpillars, "pp_loose", "v1", score_thresh=0.05, store=store)
    assert loose.score_thresh == 0.1
    with pytest.warns(UserWarning, match=r"iou_thresh=0.5 is above the IoU of the model's own NMS \(0.01\)"):
        loose = ObjectDetection3DTracer(pointpillars, "pp_loose", "v1", iou_thresh=0.5, store=store)
    assert loose.iou_thresh == 0.01


def test_data_batches_carry_ground_truth_and_ids(pointpillars, store) -> None:
    from mmengine.structures import InstanceData

    batch = data_batch([models.cloud(4), models.cloud(5)])
    for i, sample in enumerate(batch["data_samples"]):
        sample.set_metainfo({"sample_idx": 100 + i})
        box = models.mmdet3d.structures.LiDARInstance3DBoxes(torch.tensor([[8.0, 1.0, -1.58, 3.9, 1.6, 1.56, 0.3]]))
        sample.gt_instances_3d = InstanceData(bboxes_3d=box, labels_3d=torch.tensor([0]))
    tracer = ObjectDetection3DTracer(pointpillars, "pp_batch", "v1", store=store)
    tracer(batch, dataset_type="val")
    outputs = pointpillars.test_step(batch)
    tracer.record(batch, outputs, dataset_type="test")  # the outputs of a framework's own loop
    tracer.wait_for_save()
    traced, recorded = (rows(store, "pp_batch").query(f"dataset_type == '{d}'").reset_index() for d in ("val", "test"))
    for frames in (traced, recorded):
        assert frames["input_id"].tolist() == ["100", "101"]
        np.testing.assert_allclose(np.stack(frames["gt_boxes"][0]), [[8.0, 1.0, -0.8, 1.6, 3.9, 1.56, 0.3]], rtol=1e-6)
    for column in ("pred_boxes", "pred_scores", "pred_num_points", "input_hash"):
        assert str(traced[column].tolist()) == str(recorded[column].tolist())
    assert traced["pred_features"][0] is not None and recorded["pred_features"][0] is None


def test_bad_ground_truth_names_the_field_and_records_nothing(pointpillars, store) -> None:
    tracer = ObjectDetection3DTracer(pointpillars, "pp_bad", "v1", store=store)
    bad = [{"boxes_3d": torch.zeros(1, 6), "labels_3d": torch.tensor([0])}]
    with pytest.raises(TraceValidationError, match=r"targets\[0\]\['boxes_3d'\] must have shape \(n, 7\)"):
        tracer(models.cloud(0), bad)
    with pytest.raises(TraceValidationError, match=r"targets\[0\]\['labels_3d'\] has class 3; the model has 1 classes"):
        tracer(models.cloud(0), [{"boxes_3d": torch.ones(1, 7), "labels_3d": torch.tensor([3])}])
    with pytest.raises(TraceValidationError, match=r"targets is required"):
        tracer(models.cloud(0))
    with pytest.raises(TraceValidationError, match=r"inputs\['img_metas'\] has 1 entries for 2 frames"):
        tracer({"points": [models.cloud(0), models.cloud(1)], "img_metas": [{}]}, car_targets(2))
    tracer.wait_for_save()
    assert store.committed_epochs("pp_bad", "v1") == []


def test_centerpoint_with_velocities_and_task_labels(centerpoint, store) -> None:
    clouds = [models.cloud(6, width=5, low=(-12, -12, -3), high=(12, 12, 1))]
    targets = {
        "boxes_3d": [torch.tensor([[2.0, 3.0, -1.0, 1.9, 4.5, 1.7, 1.0]])],
        "labels_3d": [torch.tensor([8])],
        "velocities": [torch.tensor([[0.5, float("nan")]])],
        "attributes": [["vehicle.moving"]],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about with the model's own settings
        tracer = ObjectDetection3DTracer(centerpoint, "cp", "v1", store=store)
    assert type(tracer).__name__ == "CenterPointTracer"
    # centerpoint_pillar02_second_secfpn_nus.py test_cfg: score_threshold=0.1, nms_thr=0.2, max_per_img=500
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_frame) == (0.1, 0.2, 500)
    assert tracer.pc_range == tuple(models.CP_RANGE) and tracer.n_classes == 10
    assert tracer.label_names[:2] == ("car", "truck") and tracer.label_names[-1] == "traffic_cone"
    output = tracer(clouds, targets, dataset_type="val")
    tracer.wait_for_save()
    recorded = rows(store, "cp").iloc[0]
    instances = output[0].pred_instances_3d
    assert instances.bboxes_3d.box_dim == 9 and len(instances.scores_3d) > 0
    np.testing.assert_allclose(
        np.stack(recorded["pred_velocities"]), instances.bboxes_3d.tensor[:, 7:9].detach().numpy(), rtol=1e-6
    )
    assert set(recorded["pred_labels"].tolist()) <= set(range(10)) and len(set(recorded["pred_labels"])) > 1
    assert recorded["gt_attributes"].tolist() == ["vehicle.moving"] and np.isnan(recorded["gt_velocities"][0][1])
    assert len(recorded["pred_features"][0]) == 384 and recorded["label_names"][8] == "pedestrian"


def test_box_features_are_the_bev_map_at_the_box_centre(pointpillars, store) -> None:
    captured = {}
    handle = pointpillars.neck.register_forward_hook(lambda module, args, output: captured.update(bev=output[0]))
    tracer = ObjectDetection3DTracer(pointpillars, "pp_features", "v1", store=store)
    try:
        tracer(models.cloud(7), car_targets(1), dataset_type="val")
    finally:
        handle.remove()
    tracer.wait_for_save()
    recorded = rows(store, "pp_features").iloc[0]
    bev = captured["bev"][0].detach().numpy()  # (C, H, W): rows along y, columns along x
    x0, y0, _, x1, y1, _ = models.PP_RANGE
    for box, features in zip(
        recorded["gt_boxes"].tolist() + recorded["pred_boxes"].tolist()[:3],
        recorded["gt_features"].tolist() + recorded["pred_features"].tolist()[:3],
    ):
        u = (box[0] - x0) / (x1 - x0) * bev.shape[2] - 0.5  # continuous column of the centre
        v = (box[1] - y0) / (y1 - y0) * bev.shape[1] - 0.5
        c, r = int(np.floor(u)), int(np.floor(v))
        fu, fv = u - c, v - r
        expected = (
            (1 - fu) * (1 - fv) * bev[:, r, c]
            + fu * (1 - fv) * bev[:, r, c + 1]
            + (1 - fu) * fv * bev[:, r + 1, c]
            + fu * fv * bev[:, r + 1, c + 1]
        )
        np.testing.assert_allclose(np.asarray(features, dtype=np.float32), expected, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(
        np.asarray(recorded["frame_features"], np.float32), bev.mean(axis=(1, 2)), rtol=2e-3, atol=1e-3
    )
