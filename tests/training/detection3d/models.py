"""Tiny 3-D detectors for the tracer tests.

PointPillars and CenterPoint are built from MMDetection3D's own shipped configs (no weights),
shrunk to a small point-cloud range. BEVFormer, BEVFusion and the OpenPCDet detectors are not
installable here, so small real torch modules stand in for them: they have the same interface,
configuration attributes and output format as the originals (cited per class).
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

mmdet3d = pytest.importorskip("mmdet3d", reason="MMDetection3D is not installed")

from mmdet3d.models import Base3DDetector
from mmdet3d.structures import LiDARInstance3DBoxes

CONFIGS = Path(mmdet3d.__file__).parent / ".mim" / "configs"
PP_RANGE = [0.0, -10.24, -3.0, 20.48, 10.24, 1.0]
CP_RANGE = [-12.8, -12.8, -5.0, 12.8, 12.8, 3.0]


def _build(cfg) -> nn.Module:
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules

    register_all_modules()
    torch.manual_seed(0)
    return MODELS.build(cfg).eval()


@functools.cache
def _pointpillars_cfg():
    from mmengine import Config

    cfg = Config.fromfile(str(CONFIGS / "pointpillars" / "pointpillars_hv_secfpn_8xb6-160e_kitti-3d-car.py")).model
    cfg.data_preprocessor.voxel_layer.point_cloud_range = PP_RANGE
    cfg.voxel_encoder.point_cloud_range = PP_RANGE
    cfg.middle_encoder.output_shape = [128, 128]  # 20.48 m / 0.16 m
    cfg.bbox_head.anchor_generator.ranges = [[0.0, -10.24, -1.78, 20.48, 10.24, -1.78]]
    return cfg


def pointpillars() -> nn.Module:
    """MMDetection3D's KITTI car PointPillars (VoxelNet + PillarFeatureNet + Anchor3DHead)."""
    return _build(_pointpillars_cfg())


@functools.cache
def _centerpoint_cfg():
    from mmengine import Config

    cfg = Config.fromfile(
        str(CONFIGS / "centerpoint" / "centerpoint_pillar02_second_secfpn_8xb4-cyclic-20e_nus-3d.py")
    ).model
    cfg.data_preprocessor.voxel_layer.point_cloud_range = CP_RANGE
    cfg.pts_voxel_encoder.point_cloud_range = CP_RANGE
    cfg.pts_middle_encoder.output_shape = (128, 128)  # 25.6 m / 0.2 m
    cfg.pts_bbox_head.bbox_coder.pc_range = CP_RANGE[:2]
    cfg.train_cfg.pts.point_cloud_range = CP_RANGE
    cfg.train_cfg.pts.grid_size = [128, 128, 1]
    cfg.test_cfg.pts.update(pc_range=CP_RANGE[:2], pre_max_size=100, post_max_size=20)  # a fast rotated NMS on CPU
    return cfg


def centerpoint() -> nn.Module:
    """MMDetection3D's nuScenes CenterPoint (pillar 0.2 m, 6 task heads, 10 classes, velocities)."""
    return _build(_centerpoint_cfg())


def cloud(seed: int, n: int = 2000, width: int = 4, low=(0.5, -10.0, -2.5), high=(20.0, 10.0, 0.5)) -> torch.Tensor:
    """A generated point cloud ``(n, width)``: x, y, z uniform in the box, intensity (and the rest) in [0, 1)."""
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(low, high, size=(n, 3))
    return torch.tensor(np.column_stack([xyz, rng.uniform(size=(n, width - 3))]), dtype=torch.float32)


class _BEVNet(nn.Module):
    """Points scattered into a BEV occupancy grid, then a convolution: a small real BEV backbone."""

    def __init__(self, pc_range, cells: int = 32, channels: int = 8) -> None:
        super().__init__()
        self.pc_range, self.cells = list(pc_range), cells
        self.conv = nn.Conv2d(1, channels, 3, padding=1)

    def grid(self, clouds: list[torch.Tensor]) -> torch.Tensor:
        x0, y0, _, x1, y1, _ = self.pc_range
        maps = torch.zeros(len(clouds), 1, self.cells, self.cells)
        for b, points in enumerate(clouds):
            col = ((points[:, 0] - x0) / (x1 - x0) * self.cells).long().clamp(0, self.cells - 1)
            row = ((points[:, 1] - y0) / (y1 - y0) * self.cells).long().clamp(0, self.cells - 1)
            maps[b, 0].index_put_((row, col), torch.ones(len(points)), accumulate=True)
        return torch.relu(self.conv(maps))


def _top_cells(bev: torch.Tensor, pc_range, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scores and BEV centres (x, y) of the ``k`` best cells of each frame's first channel."""
    b, _, h, w = bev.shape
    scores = torch.sigmoid(bev[:, 0].reshape(b, -1) - bev[:, 0].mean())
    top, index = scores.topk(k, dim=1)
    x0, y0, _, x1, y1, _ = pc_range
    xs = x0 + (index % w + 0.5) * (x1 - x0) / w
    ys = y0 + (index // w + 0.5) * (y1 - y0) / h
    return top, xs, ys


class _Backbone2D(nn.Module):
    """OpenPCDet's ``BaseBEVBackbone``: reads ``spatial_features``, writes ``spatial_features_2d``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, batch_dict: dict) -> dict:
        batch_dict["spatial_features_2d"] = torch.relu(self.conv(batch_dict["spatial_features"]))
        return batch_dict


class _OpenPCDetDetector(nn.Module):
    """What OpenPCDet's ``Detector3DTemplate`` gives a detector: ``model_cfg``, ``dataset``,
    ``class_names``, ``num_class``, ``module_list``; points ``(M, 1 + C)`` with the batch index
    first are scattered into ``spatial_features``, then ``backbone_2d`` runs."""

    def __init__(self, model_cfg: dict, pc_range, class_names) -> None:
        super().__init__()
        self.model_cfg = model_cfg
        self.dataset = SimpleNamespace(
            point_cloud_range=np.array(pc_range, dtype=np.float32), class_names=list(class_names)
        )
        self.class_names, self.num_class = list(class_names), len(class_names)
        self.scatter = _BEVNet(pc_range)
        self.backbone_2d = _Backbone2D()
        self.module_list = nn.ModuleList([self.scatter, self.backbone_2d])

    def bev(self, batch_dict: dict) -> torch.Tensor:
        points = batch_dict["points"]
        clouds = [points[points[:, 0] == b, 1:] for b in range(batch_dict["batch_size"])]
        batch_dict["spatial_features"] = self.scatter.grid(clouds)
        return self.backbone_2d(batch_dict)["spatial_features_2d"]


class PointPillar(_OpenPCDetDetector):
    """OpenPCDet's ``PointPillar`` (pcdet/models/detectors/pointpillar.py, tools/cfgs/kitti_models/
    pointpillar.yaml): ``forward(batch_dict)`` returns ``(pred_dicts, recall_dict)`` with
    ``pred_boxes`` ``(n, 7)`` ``[x, y, z, dx, dy, dz, heading]``, ``pred_scores`` and 1-based
    ``pred_labels``."""

    box_size = (3.9, 1.6, 1.56)  # dx (along the heading), dy, dz

    def __init__(self, pc_range=PP_RANGE, class_names=("Car", "Pedestrian", "Cyclist")) -> None:
        cfg = {"POST_PROCESSING": {"SCORE_THRESH": 0.3, "NMS_CONFIG": {"NMS_THRESH": 0.01, "NMS_POST_MAXSIZE": 40}}}
        super().__init__(cfg, pc_range, class_names)
        self.heading = nn.Linear(8, 1)

    def forward(self, batch_dict: dict):
        bev = self.bev(batch_dict)
        scores, xs, ys = _top_cells(bev, self.dataset.point_cloud_range, k=12)
        heading = self.heading(bev.mean(dim=(2, 3)))
        pred_dicts = []
        for b in range(len(bev)):
            n = scores.shape[1]
            boxes = torch.stack(
                [
                    xs[b],
                    ys[b],
                    torch.full((n,), -1.0),
                    *(torch.full((n,), s) for s in self.box_size),
                    heading[b].expand(n),
                ],
                dim=1,
            )
            keep = scores[b] >= self.model_cfg["POST_PROCESSING"]["SCORE_THRESH"]
            labels = torch.arange(n) % self.num_class + 1
            pred_dicts.append({"pred_boxes": boxes[keep], "pred_scores": scores[b][keep], "pred_labels": labels[keep]})
        return pred_dicts, {}


class CenterPoint(_OpenPCDetDetector):
    """OpenPCDet's ``CenterPoint`` (pcdet/models/detectors/centerpoint.py) with the nuScenes head's
    9-value ``pred_boxes`` ``[x, y, z, dx, dy, dz, heading, vx, vy]`` and ``DENSE_HEAD.POST_PROCESSING``
    (tools/cfgs/nuscenes_models/cbgs_voxel0075_res3d_centerpoint.yaml)."""

    names = (
        "car",
        "truck",
        "construction_vehicle",
        "bus",
        "trailer",
        "barrier",
        "motorcycle",
        "bicycle",
        "pedestrian",
        "traffic_cone",
    )

    def __init__(self, pc_range=CP_RANGE) -> None:
        cfg = {
            "DENSE_HEAD": {
                "POST_PROCESSING": {
                    "SCORE_THRESH": 0.1,
                    "MAX_OBJ_PER_SAMPLE": 500,
                    "NMS_CONFIG": {"NMS_THRESH": 0.2, "NMS_POST_MAXSIZE": 83},
                }
            },
            "POST_PROCESSING": {"RECALL_THRESH_LIST": [0.3, 0.5, 0.7]},
        }
        super().__init__(cfg, pc_range, self.names)
        self.regress = nn.Conv2d(8, 5, 1)  # heading, vx, vy, log dx, log dy

    def forward(self, batch_dict: dict):
        bev = self.bev(batch_dict)
        scores, xs, ys = _top_cells(bev, self.dataset.point_cloud_range, k=10)
        reg = self.regress(bev).mean(dim=(2, 3))
        pred_dicts = []
        for b in range(len(bev)):
            n, r = scores.shape[1], reg[b]
            boxes = torch.stack(
                [
                    xs[b],
                    ys[b],
                    torch.full((n,), -0.5),
                    4.0 + r[3].exp().expand(n),
                    1.8 + r[4].exp().expand(n),
                    torch.full((n,), 1.6),
                    r[0].expand(n),
                    r[1].expand(n),
                    r[2].expand(n),
                ],
                dim=1,
            )
            pred_dicts.append({"pred_boxes": boxes, "pred_scores": scores[b], "pred_labels": torch.arange(n) % 10 + 1})
        return pred_dicts, {}


class _NMSFreeCoder(nn.Module):
    """BEVFormer's ``NMSFreeCoder`` settings (projects/mmdet3d_plugin/core/bbox/coders/nms_free_coder.py)."""

    def __init__(self, pc_range) -> None:
        super().__init__()
        self.pc_range, self.max_num, self.score_threshold = pc_range, 300, None


class _DETRHead(nn.Module):
    def __init__(self, pc_range, num_classes: int = 10, queries: int = 20) -> None:
        super().__init__()
        self.bbox_coder = _NMSFreeCoder(pc_range)
        self.num_classes, self.queries = num_classes, queries
        self.query = nn.Linear(8, queries * (num_classes + 9))


class BEVFormer(nn.Module):
    """BEVFormer's MMDetection3D 0.x interface (projects/mmdet3d_plugin/bevformer/detectors/bevformer.py):
    ``forward(return_loss=True, **kwargs)`` -> ``forward_test(img_metas, img)`` with one-item
    test-time-augmentation lists, returning ``[{'pts_bbox': {boxes_3d, scores_3d, labels_3d}}]``
    with 9-value bottom-centred ``LiDARInstance3DBoxes``; camera only."""

    def __init__(self, pc_range=(-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)) -> None:
        super().__init__()
        self.img_backbone = nn.Conv2d(3, 8, 3, padding=1)
        self.pts_bbox_head = _DETRHead(None if pc_range is None else list(pc_range))
        self.pc_range = pc_range or (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)

    def forward(self, return_loss: bool = True, **kwargs):
        if return_loss:
            raise NotImplementedError("training is not part of the stand-in")
        return self.forward_test(**kwargs)

    def forward_test(self, img_metas, img=None, rescale: bool = False, **kwargs):
        img_metas, img = img_metas[0], img[0]  # test-time-augmentation lists
        batch, cams = img.shape[:2]
        feats = self.img_backbone(img.flatten(0, 1)).mean(dim=(2, 3)).view(batch, cams, -1).mean(dim=1)
        head = self.pts_bbox_head
        out = head.query(feats).view(batch, head.queries, head.num_classes + 9)
        x0, y0, z0, x1, y1, z1 = self.pc_range
        results = []
        for b in range(batch):
            logits, reg = out[b, :, : head.num_classes], out[b, :, head.num_classes :]
            scores, labels = torch.sigmoid(logits).max(dim=1)
            centre = torch.sigmoid(reg[:, :3]) * torch.tensor([x1 - x0, y1 - y0, z1 - z0]) + torch.tensor([x0, y0, z0])
            dims = reg[:, 3:6].exp()
            boxes = torch.cat([centre[:, :2], centre[:, 2:3] - dims[:, 2:3] / 2, dims, reg[:, 6:9]], dim=1)
            results.append(
                {
                    "pts_bbox": {
                        "boxes_3d": LiDARInstance3DBoxes(boxes, box_dim=9),
                        "scores_3d": scores,
                        "labels_3d": labels,
                    }
                }
            )
        return results


class _TransFusionHead(nn.Module):
    """TransFusionHead's settings in BEVFusion (projects/BEVFusion/configs/bevfusion_lidar-cam_*.py):
    ``num_proposals``, ``test_cfg`` with ``nms_type=None``, a coder with ``score_threshold=0.0``."""

    def __init__(self, pc_range, num_classes: int = 10, proposals: int = 16) -> None:
        super().__init__()
        self.num_classes, self.num_proposals = num_classes, proposals
        self.test_cfg = {"pc_range": list(pc_range[:2]), "nms_type": None, "out_size_factor": 8}
        self.bbox_coder = SimpleNamespace(score_threshold=0.0, pc_range=list(pc_range[:2]))
        self.heatmap = nn.Conv2d(16, num_classes, 1)
        self.reg = nn.Conv2d(16, 8, 1)

    def predict(self, bev: torch.Tensor, pc_range) -> list:
        from mmengine.structures import InstanceData

        batch, _, h, w = bev.shape
        heat = torch.sigmoid(self.heatmap(bev)).flatten(2)  # (B, classes, h*w)
        reg = self.reg(bev).flatten(2)
        results = []
        for b in range(batch):
            scores, flat = heat[b].flatten().topk(self.num_proposals)
            labels, cell = flat // (h * w), flat % (h * w)
            x = pc_range[0] + (cell % w + 0.5) * (pc_range[3] - pc_range[0]) / w
            y = pc_range[1] + (cell // w + 0.5) * (pc_range[4] - pc_range[1]) / h
            r = reg[b][:, cell].T
            dims = r[:, 0:3].exp()
            boxes = torch.stack(
                [x, y, r[:, 3] - dims[:, 2] / 2, dims[:, 0], dims[:, 1], dims[:, 2], r[:, 4], r[:, 5], r[:, 6]], dim=1
            )
            instances = InstanceData()
            instances.bboxes_3d = LiDARInstance3DBoxes(boxes, box_dim=9)
            instances.scores_3d, instances.labels_3d = scores, labels
            results.append(instances)
        return results


class BEVFusion(Base3DDetector):
    """MMDetection3D's BEVFusion project interface (projects/BEVFusion/bevfusion/bevfusion.py): a
    ``Base3DDetector`` with ``Det3DDataPreprocessor``, ``pts_voxel_layer`` (MMCV ``Voxelization``),
    ``img_backbone``, ``view_transform``, ``fusion_layer``, ``pts_neck`` and a TransFusion
    ``bbox_head``; ``predict`` takes ``points`` and ``imgs`` and returns data samples."""

    def __init__(self, pc_range=(-12.8, -12.8, -5.0, 12.8, 12.8, 3.0)) -> None:
        from mmcv.ops import Voxelization

        super().__init__(
            data_preprocessor={
                "type": "Det3DDataPreprocessor",
                "mean": [0.0, 0.0, 0.0],
                "std": [1.0, 1.0, 1.0],
                "bgr_to_rgb": False,
            }
        )
        self.pc_range = list(pc_range)
        self.pts_voxel_layer = Voxelization([0.8, 0.8, 8.0], self.pc_range, max_num_points=10, max_voxels=2000)
        self.bev = _BEVNet(self.pc_range, cells=32, channels=8)
        self.img_backbone = nn.Conv2d(3, 8, 3, padding=1)
        self.view_transform = nn.Linear(8, 8)
        self.fusion_layer = nn.Conv2d(16, 16, 1)
        self.pts_neck = nn.Conv2d(16, 16, 3, padding=1)
        self.bbox_head = _TransFusionHead(self.pc_range)

    def extract_feat(self, batch_inputs_dict, batch_input_metas=None):
        points, imgs = batch_inputs_dict["points"], batch_inputs_dict["imgs"]
        for cloud in points:
            self.pts_voxel_layer(cloud)  # the real op, as BEVFusion.voxelize runs it
        lidar = self.bev.grid(points)
        cams = self.img_backbone(imgs.flatten(0, 1)).mean(dim=(2, 3)).view(imgs.shape[0], imgs.shape[1], -1).mean(dim=1)
        camera = self.view_transform(cams)[:, :, None, None].expand_as(lidar)
        return self.pts_neck(torch.relu(self.fusion_layer(torch.cat([lidar, camera], dim=1))))

    def predict(self, batch_inputs_dict, batch_data_samples, **kwargs):
        bev = self.extract_feat(batch_inputs_dict)
        return self.add_pred_to_datasample(batch_data_samples, self.bbox_head.predict(bev, self.pc_range))

    def loss(self, batch_inputs_dict, batch_data_samples, **kwargs):
        raise NotImplementedError("training is not part of the stand-in")

    def _forward(self, batch_inputs_dict, batch_data_samples=None, **kwargs):
        return self.extract_feat(batch_inputs_dict)
