"""Box conventions: MMDetection3D bottom centres and (x_size, y_size) order, its 0.x sizes and yaw,
OpenPCDet's 1-based labels and 9-value boxes; the BEV IoU and NMS the PointPillars tracer uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml_debugger.exceptions import TraceValidationError
from ml_debugger.training.detection3d import boxes_to_reference, predictions_from_samples, targets_from_samples
from ml_debugger.training.detection3d._nms import bev_corners, bev_iou, nms_bev
from ml_debugger.training.detection3d._openpcdet import carried_targets, predictions_from_pred_dicts

structures = pytest.importorskip("mmdet3d.structures", reason="MMDetection3D is not installed")

# MMDetection3D 1.x LiDAR box: bottom centre (10, 5, -1.5), x_size 4 (along the heading),
# y_size 2, z_size 1.5, yaw 0.5 rad, velocity (1.0, -0.5).
MMDET3D_BOX = [10.0, 5.0, -1.5, 4.0, 2.0, 1.5, 0.5, 1.0, -0.5]
REFERENCE_BOX = [10.0, 5.0, -0.75, 2.0, 4.0, 1.5, 0.5]  # gravity centre, w = y_size, l = x_size


def test_mmdet3d_boxes_become_gravity_centred_w_l_h() -> None:
    boxes = structures.LiDARInstance3DBoxes(torch.tensor([MMDET3D_BOX]), box_dim=9)
    reference, velocities = boxes_to_reference(boxes, legacy=False)
    np.testing.assert_allclose(reference, [REFERENCE_BOX], rtol=1e-6)
    np.testing.assert_allclose(velocities, [[1.0, -0.5]])
    # The same footprint: MMDetection3D's own corners against ours (l along the heading).
    theirs = boxes.corners[0, :, :2].numpy()
    ours = bev_corners(reference)[0]
    assert sorted(map(tuple, np.round(theirs, 5))) == sorted(map(tuple, np.round(np.concatenate([ours, ours]), 5)))


def test_mmdet3d_boxes_match_the_nuscenes_devkit_export() -> None:
    from mmdet3d.evaluation.metrics.nuscenes_metric import output_to_nusc_box

    boxes = structures.LiDARInstance3DBoxes(torch.tensor([MMDET3D_BOX]), box_dim=9)
    [nus_box], _ = output_to_nusc_box(
        {"bboxes_3d": boxes, "scores_3d": torch.tensor([0.9]), "labels_3d": torch.tensor([0])}
    )
    reference, _ = boxes_to_reference(boxes, legacy=False)
    np.testing.assert_allclose(reference[0, :3], nus_box.center, rtol=1e-6)
    np.testing.assert_allclose(reference[0, 3:6], nus_box.wlh, rtol=1e-6)  # nuScenes' w, l, h
    np.testing.assert_allclose(reference[0, 6], nus_box.orientation.yaw_pitch_roll[0], rtol=1e-6)
    np.testing.assert_allclose(bev_corners(reference)[0], nus_box.corners()[:2, [0, 4, 5, 1]].T, atol=1e-5)


def test_mmdet3d_0x_boxes_have_w_l_sizes_and_the_old_yaw() -> None:
    # In mmdet3d 0.x (BEVFormer) the sizes are (w, l, h) and nuScenes' yaw is -yaw - pi/2,
    # as its output_to_nusc_box converted them.
    boxes = structures.LiDARInstance3DBoxes(torch.tensor([[10.0, 5.0, -1.5, 2.0, 4.0, 1.5, 0.5]]))
    reference, velocities = boxes_to_reference(boxes, legacy=True)
    np.testing.assert_allclose(reference, [[10.0, 5.0, -0.75, 2.0, 4.0, 1.5, -0.5 - np.pi / 2]], rtol=1e-6)
    assert velocities is None


def test_data_samples_give_predictions_and_ground_truth() -> None:
    from mmengine.structures import InstanceData

    sample = structures.Det3DDataSample()
    sample.pred_instances_3d = InstanceData(
        bboxes_3d=structures.LiDARInstance3DBoxes(torch.tensor([MMDET3D_BOX[:7]])),
        scores_3d=torch.tensor([0.7]),
        labels_3d=torch.tensor([2], dtype=torch.int32),
    )
    [prediction] = predictions_from_samples([sample])
    np.testing.assert_allclose(prediction["boxes_3d"], [REFERENCE_BOX], rtol=1e-6)
    assert prediction["labels_3d"].tolist() == [2] and "velocities" not in prediction
    # Test pipelines keep the ground truth in eval_ann_info; training ones in gt_instances_3d.
    sample.eval_ann_info = {
        "gt_bboxes_3d": structures.LiDARInstance3DBoxes(torch.tensor([MMDET3D_BOX]), box_dim=9),
        "gt_labels_3d": np.array([4]),
    }
    [truth] = targets_from_samples([sample])
    np.testing.assert_allclose(truth["boxes_3d"], [REFERENCE_BOX], rtol=1e-6)
    assert truth["labels_3d"].tolist() == [4] and truth["velocities"].tolist() == [[1.0, -0.5]]
    with pytest.raises(TraceValidationError, match=r"targets\[0\] is a data sample without"):
        targets_from_samples([structures.Det3DDataSample()])


def test_camera_boxes_are_refused_and_depth_boxes_read_like_lidar_boxes() -> None:
    with pytest.raises(TraceValidationError, match="must be z-up boxes .* got CameraInstance3DBoxes with YAW_AXIS 1"):
        boxes_to_reference(structures.CameraInstance3DBoxes(torch.zeros(1, 7)))
    tensor = torch.tensor([[1.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.3]])
    depth, _ = boxes_to_reference(structures.DepthInstance3DBoxes(tensor))
    lidar, _ = boxes_to_reference(structures.LiDARInstance3DBoxes(tensor))
    np.testing.assert_allclose(depth, lidar)
    np.testing.assert_allclose(lidar, [[1.0, 2.0, -0.25, 2.0, 4.0, 1.5, 0.3]])  # gravity centre, w = y_size


def test_openpcdet_boxes_swap_dx_dy_and_labels_become_0_based() -> None:
    pred_dicts = [
        {
            "pred_boxes": torch.tensor([[10.0, 5.0, -0.75, 4.0, 2.0, 1.5, 0.5, 1.0, -0.5]]),
            "pred_scores": torch.tensor([0.8]),
            "pred_labels": torch.tensor([1]),
        },
        {
            "pred_boxes": torch.zeros(0, 9),
            "pred_scores": torch.zeros(0),
            "pred_labels": torch.zeros(0, dtype=torch.long),
        },
    ]
    first, empty = predictions_from_pred_dicts((pred_dicts, {}))
    np.testing.assert_allclose(first["boxes_3d"], [REFERENCE_BOX], rtol=1e-6)  # gravity centre already
    assert first["labels_3d"].tolist() == [0] and first["velocities"].tolist() == [[1.0, -0.5]]
    assert empty["boxes_3d"].shape == (0, 7) and empty["velocities"].shape == (0, 2)
    with pytest.raises(TraceValidationError, match="must be 1-based"):
        predictions_from_pred_dicts(
            [{"pred_boxes": torch.zeros(1, 7), "pred_scores": torch.ones(1), "pred_labels": torch.zeros(1)}]
        )
    # gt_boxes of a batch_dict: [x, y, z, dx, dy, dz, heading, label], zero rows pad the batch.
    gt = torch.zeros(2, 2, 8)
    gt[0, 0] = torch.tensor([10.0, 5.0, -0.75, 4.0, 2.0, 1.5, 0.5, 3])
    frames = carried_targets({"gt_boxes": gt})
    np.testing.assert_allclose(frames[0]["boxes_3d"], [REFERENCE_BOX], rtol=1e-6)
    assert frames[0]["labels_3d"].tolist() == [2] and len(frames[1]["labels_3d"]) == 0


def test_bev_iou_equals_exact_polygon_overlap() -> None:
    geometry = pytest.importorskip("shapely.geometry", reason="shapely is not installed")
    rng = np.random.default_rng(1)
    n = 40
    boxes = np.column_stack(
        [
            rng.uniform(-4, 4, (n, 2)),
            np.zeros(n),
            rng.uniform(0.5, 3, n),
            rng.uniform(0.5, 6, n),
            np.ones(n),
            rng.uniform(-4, 4, n),
        ]
    )
    polygons = [geometry.Polygon(c) for c in bev_corners(boxes)]
    expected = np.array([[p.intersection(q).area / p.union(q).area for q in polygons] for p in polygons])
    np.testing.assert_allclose(bev_iou(boxes, boxes), expected, atol=1e-9)
    assert (expected > 0).sum() > 2 * n  # overlaps beyond the diagonal were exercised


def test_nms_is_class_wise_and_keeps_the_best() -> None:
    boxes = np.array(
        [
            [0, 0, 0, 2, 4, 1.5, 0.0],
            [0.2, 0, 0, 2, 4, 1.5, 0.1],
            [0.2, 0, 0, 2, 4, 1.5, 0.1],
            [10, 0, 0, 2, 4, 1.5, 0.0],
        ]
    )
    scores = np.array([0.5, 0.9, 0.8, 0.3])
    labels = np.array([0, 0, 1, 0])
    assert nms_bev(boxes, scores, labels, 0.5).tolist() == [1, 2, 3]  # box 0 overlaps the better box 1
    assert nms_bev(boxes, scores, labels, 0.99).tolist() == [1, 2, 0, 3]
