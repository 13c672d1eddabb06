"""OpenPCDet detectors, BEVFormer, BEVFusion and unknown models, through their output formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.store import LocalStore
from ml_debugger.training import ObjectDetection3DTracer
from ml_debugger.training.detection3d import detect_family
from ml_debugger.training.detection3d._nms import bev_iou
from tests.training.detection3d import models


def rows(store: LocalStore, name: str):
    return store.read_traces(name, "v1", None).to_pandas()


def targets(n_frames: int, label: int = 0) -> dict:
    return {
        "boxes_3d": [torch.tensor([[6.0, 2.0, -1.0, 1.6, 3.9, 1.5, 0.2]]) for _ in range(n_frames)],
        "labels_3d": [torch.tensor([label]) for _ in range(n_frames)],
    }


class EFMFPillars(models.PointPillar):
    """A derivative recognised by its class name."""


def test_openpcdet_pointpillars_from_point_tensors(store) -> None:
    torch.manual_seed(0)
    model = models.PointPillar().eval()
    tracer = ObjectDetection3DTracer(model, "pcdet_pp", "v1", store=store)
    assert type(tracer).__name__ == "PointPillarsTracer"
    # tools/cfgs/kitti_models/pointpillar.yaml-style POST_PROCESSING of the stand-in
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_frame) == (0.3, 0.01, 40)
    assert tracer.pc_range == pytest.approx(models.PP_RANGE) and tracer.label_names == ("Car", "Pedestrian", "Cyclist")
    clouds = [models.cloud(0), models.cloud(1, n=900)]
    pred_dicts, recall = tracer(clouds, targets(2), input_ids=[7, 8], dataset_type="val")
    assert recall == {} and len(pred_dicts) == 2  # OpenPCDet's own output
    tracer.wait_for_save()
    recorded = rows(store, "pcdet_pp")
    for i, frame in enumerate(pred_dicts):
        assert len(frame["pred_boxes"]) > 0
        assert recorded["pred_labels"][i].tolist() == (frame["pred_labels"] - 1).tolist()  # 1-based -> 0-based
        boxes = np.stack(recorded["pred_boxes"][i])
        np.testing.assert_allclose(
            boxes[:, 3:6], np.tile([1.6, 3.9, 1.56], (len(boxes), 1)), rtol=1e-6
        )  # w = dy, l = dx
        assert len(recorded["pred_features"][i][0]) == 8 and all(n >= 0 for n in recorded["pred_num_points"][i])
    assert recorded["input_id"].tolist() == ["7", "8"]


def test_openpcdet_batch_dicts_carry_ground_truth_and_frame_ids(store) -> None:
    model = EFMFPillars().eval()
    assert detect_family(model) == "PointPillars"
    clouds = [models.cloud(2), models.cloud(3)]
    points = torch.cat([nn.functional.pad(c, (1, 0), value=float(b)) for b, c in enumerate(clouds)])
    gt_boxes = torch.zeros(2, 2, 8)
    gt_boxes[0, 0] = torch.tensor([6.0, 2.0, -1.0, 3.9, 1.6, 1.5, 0.2, 1])
    gt_boxes[1, :] = torch.tensor([[6.0, 2.0, -1.0, 3.9, 1.6, 1.5, 0.2, 2], [12.0, -3.0, -1.0, 0.8, 0.6, 1.7, 0.0, 2]])
    batch_dict = {"points": points, "batch_size": 2, "gt_boxes": gt_boxes, "frame_id": np.array(["000001", "000002"])}
    tracer = ObjectDetection3DTracer(model, "pcdet_batch", "v1", iou_thresh=0.001, store=store)
    tracer(batch_dict, dataset_type="val")
    tracer.wait_for_save()
    recorded = rows(store, "pcdet_batch")
    assert recorded["input_id"].tolist() == ["000001", "000002"]
    assert recorded["gt_labels"].map(list).tolist() == [[0], [1, 1]]
    np.testing.assert_allclose(np.stack(recorded["gt_boxes"][0]), [[6.0, 2.0, -1.0, 1.6, 3.9, 1.5, 0.2]], rtol=1e-6)
    for i in range(2):  # the tracer's NMS at 0.001, stricter than the model's 0.01
        boxes, labels = np.stack(recorded["pred_boxes"][i]), recorded["pred_labels"][i]
        iou = bev_iou(boxes, boxes)[labels[:, None] == labels[None]]
        assert (iou[iou < 0.999] <= 0.001).all()
    assert recorded["iou_thresh"].tolist() == pytest.approx([0.001, 0.001])


def test_openpcdet_centerpoint_records_velocities(store) -> None:
    model = models.CenterPoint().eval()
    tracer = ObjectDetection3DTracer(model, "pcdet_cp", "v1", store=store)
    assert type(tracer).__name__ == "CenterPointTracer"
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_frame) == (0.1, 0.2, 500)
    cloud = models.cloud(4, width=5, low=(-12, -12, -3), high=(12, 12, 1))
    pred_dicts, _ = tracer(cloud, targets(1, label=9), dataset_type="val")
    tracer.wait_for_save()
    recorded = rows(store, "pcdet_cp").iloc[0]
    expected = pred_dicts[0]["pred_boxes"].detach().numpy()
    np.testing.assert_allclose(np.stack(recorded["pred_velocities"]), expected[:, 7:9], rtol=1e-6)
    np.testing.assert_allclose(np.stack(recorded["pred_boxes"])[:, 3:5], expected[:, [4, 3]], rtol=1e-6)
    assert recorded["label_names"][9] == "traffic_cone"


def camera_batch(n_frames: int = 2) -> dict:
    images = torch.rand(n_frames, 6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    metas = [{"lidar2img": [np.eye(4)] * 6, "sample_idx": i} for i in range(n_frames)]
    return {"img": images, "img_metas": metas}


def test_bevformer_camera_only_without_nms(store) -> None:
    torch.manual_seed(0)
    model = models.BEVFormer().eval()
    with pytest.warns(UserWarning, match="iou_thresh=0.5 is ignored for a BEVFormer model: it is DETR-style"):
        tracer = ObjectDetection3DTracer(model, "bevformer", "v1", iou_thresh=0.5, score_thresh=0.0, store=store)
    assert type(tracer).__name__ == "BEVFormerTracer"
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_frame) == (0.0, None, 300)
    assert tracer.pc_range == (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)  # from the NMS-free coder
    gt = targets(2)
    gt["velocities"] = [torch.tensor([[1.0, 0.0]]), torch.tensor([[float("nan"), float("nan")]])]
    results = tracer(camera_batch(), gt, input_ids=["a", "b"], dataset_type="val")
    assert "pts_bbox" in results[0]
    tracer.wait_for_save()
    recorded = rows(store, "bevformer")
    boxes = results[1]["pts_bbox"]["boxes_3d"]
    np.testing.assert_allclose(
        np.stack(recorded["pred_boxes"][1])[:, 2], boxes.gravity_center[:, 2].detach().numpy(), rtol=1e-5
    )
    assert len(recorded["pred_boxes"][1]) == 20 and np.stack(recorded["pred_velocities"][1]).shape == (20, 2)
    assert "pred_num_points" not in recorded and "pred_features" not in recorded  # no points, no BEV neck
    assert recorded["iou_thresh"].isna().all() and len(set(recorded["input_hash"])) == 2


def test_bevformer_needs_a_pc_range() -> None:
    model = models.BEVFormer(pc_range=None)
    with pytest.raises(ConfigurationError, match=r"BEVFormer models need pc_range=\[x_min, y_min, z_min, x_max"):
        ObjectDetection3DTracer(model, "bevformer", "v1")
    tracer = ObjectDetection3DTracer(model, "bevformer", "v1", pc_range=[-40, -40, -4, 40, 40, 2])
    assert tracer.pc_range == (-40.0, -40.0, -4.0, 40.0, 40.0, 2.0)
    with pytest.raises(ConfigurationError, match="pc_range must be"):
        ObjectDetection3DTracer(model, "bevformer", "v1", pc_range=[1, 2, 3])


def test_bevfusion_lidar_and_camera(store) -> None:
    torch.manual_seed(0)
    from mmdet3d.utils import register_all_modules

    register_all_modules()  # the data preprocessor is built from MMDetection3D's registry
    model = models.BEVFusion().eval()
    tracer = ObjectDetection3DTracer(model, "bevfusion", "v1", store=store)
    assert type(tracer).__name__ == "BEVFusionTracer"
    # TransFusion: coder score_threshold=0.0, num_proposals, nms_type=None
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_frame) == (0.0, None, 16)
    assert tracer.pc_range == (-12.8, -12.8, -5.0, 12.8, 12.8, 3.0)  # from pts_voxel_layer
    clouds = [models.cloud(5 + i, width=5, low=(-12, -12, -3), high=(12, 12, 1)) for i in range(2)]
    inputs = {"points": clouds, **camera_batch()}  # the reference's dict form
    gt = targets(2)
    gt["num_points"] = [[11], [12]]  # the dataset's own counts are kept
    output = tracer(inputs, gt, input_ids=["a", "b"], dataset_type="val")
    tracer.wait_for_save()
    recorded = rows(store, "bevfusion")
    assert [len(s.pred_instances_3d.scores_3d) for s in output] == [16, 16]
    assert [len(b) for b in recorded["pred_boxes"]] == [16, 16] and len(recorded["pred_features"][0][0]) == 16
    assert all(len(v) == 16 for v in recorded["pred_velocities"])
    assert all(len(n) == 16 for n in recorded["pred_num_points"])
    assert recorded["gt_num_points"].map(list).tolist() == [[11], [12]]


def test_unknown_models_need_output_mapping(store) -> None:
    class Mystery(nn.Module):
        def forward(self, points: torch.Tensor) -> dict:
            return {"centres": points[:3, :3], "confidence": points[:3, 3]}

    with pytest.raises(ConfigurationError) as error:
        ObjectDetection3DTracer(Mystery(), "mystery", "v1")
    message = str(error.value)
    for text in (
        "PointPillars (PointPillars++, EFMF-Pillars)",
        "CenterPoint (CenterFormer",
        "BEVFormer (BEVDet",
        "BEVFusion (Att-BEVFusion, SAMFusion)",
        "output_mapping=",
        "family=",
    ):
        assert text in message

    def mapping(output: dict) -> list[dict]:
        n = len(output["confidence"])
        boxes = torch.cat([output["centres"], torch.tensor([[1.0, 2.0, 1.5, 0.0]]).expand(n, 4)], dim=1)
        return [{"boxes_3d": boxes, "scores_3d": output["confidence"], "labels_3d": torch.zeros(n, dtype=torch.long)}]

    tracer = ObjectDetection3DTracer(Mystery(), "mystery", "v1", output_mapping=mapping, store=store)
    assert type(tracer).__name__ == "CustomDetection3DTracer"
    cloud = models.cloud(0)
    cloud[:3, 3] = torch.tensor([0.9, 0.05, 0.5])
    tracer(cloud, targets(1))
    tracer.wait_for_save()
    recorded = rows(store, "mystery").iloc[0]
    assert recorded["pred_scores"].tolist() == pytest.approx([0.9, 0.5])  # 0.05 is below the default 0.1
    with pytest.raises(
        ConfigurationError, match="unknown family 'PointPilars'; expected one of: PointPillars, CenterPoint"
    ):
        ObjectDetection3DTracer(Mystery(), "mystery", "v1", family="PointPilars")


def test_a_known_family_with_an_unknown_output_format(store) -> None:
    class PointPillarsPlusPlus(nn.Module):
        def forward(self, points: torch.Tensor) -> torch.Tensor:
            return points[:5]

    tracer = ObjectDetection3DTracer(PointPillarsPlusPlus(), "ppp", "v1", store=store)
    assert tracer.family == "PointPillars"
    with pytest.raises(
        TraceValidationError, match=r"cannot read 3-D detections from a model output of type Tensor.*output_mapping"
    ):
        tracer(models.cloud(0), targets(1))


def test_families_by_structure() -> None:
    class CenterHead(nn.Module):  # a head of that class name anywhere in the model
        pass

    class AnchorHeadSingle(nn.Linear):
        pass

    class PillarVFE(nn.Linear):
        pass

    def model(name: str, **children: nn.Module) -> nn.Module:
        module = type(name, (nn.Module,), {})()
        for child, value in children.items():
            module.add_module(child, value)
        return module

    assert detect_family(model("Det", head=CenterHead())) == "CenterPoint"
    assert detect_family(model("Det", vfe=PillarVFE(1, 1), dense_head=AnchorHeadSingle(1, 1))) == "PointPillars"
    assert detect_family(model("Det", dense_head=AnchorHeadSingle(1, 1))) is None  # SECOND-like: not a family
    camera = {"img_backbone": nn.Conv2d(3, 3, 1), "img_neck": nn.Conv2d(3, 3, 1)}
    assert detect_family(model("Cam", **camera)) == "BEVFormer"
    fusion = {
        **camera,
        "view_transform": nn.Identity(),
        "fusion_layer": nn.Identity(),
        "pts_voxel_encoder": nn.Identity(),
    }
    assert detect_family(model("Fused", **fusion)) == "BEVFusion"
    assert detect_family(model("Cam", pts_voxel_encoder=nn.Identity(), **camera)) is None  # MVX-style early fusion
