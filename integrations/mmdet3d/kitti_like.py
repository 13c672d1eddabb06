"""A tiny KITTI-like dataset written from scratch: LiDAR frames of a flat ground with a few cars,
laid out as MMDetection3D's KITTI converter leaves it (``training/velodyne_reduced/*.bin`` and
``kitti_infos_{train,val}.pkl`` in the 1.x info format, boxes in camera coordinates)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from mmdet3d.structures import Box3DMode, LiDARInstance3DBoxes, points_cam2img

CAR = 2  # "Car" in KittiDataset's METAINFO classes
SENSOR_HEIGHT = 1.73
CAR_SIZE = (3.9, 1.6, 1.56)  # x_size (along the heading), y_size, z_size
IMAGE = (1242, 375)  # width, height
CAM2IMG = np.array(
    [[721.5, 0.0, 609.6, 44.9], [0.0, 721.5, 172.9, 0.2], [0.0, 0.0, 1.0, 0.003], [0.0, 0.0, 0.0, 1.0]]
)
#: LiDAR (x forward, y left, z up) to camera (x right, y down, z forward).
LIDAR2CAM = np.array(
    [[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27], [0.0, 0.0, 0.0, 1.0]]
)


def _frame(rng: np.random.Generator, n_cars: int, n_ground: int) -> tuple[np.ndarray, np.ndarray]:
    """``(points (N, 4), lidar boxes (n, 7) bottom-centred)`` of one frame: ground and cars in view."""
    boxes = []
    while len(boxes) < n_cars:
        x = rng.uniform(6.0, 18.0)
        y = rng.uniform(-0.5, 0.5) * x
        if all(np.hypot(x - b[0], y - b[1]) > 5.0 for b in boxes):
            boxes.append([x, y, -SENSOR_HEIGHT, *CAR_SIZE, rng.uniform(-np.pi, np.pi)])
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 7)
    ground = np.column_stack([
        rng.uniform(0.0, 20.0, n_ground), rng.uniform(-10.0, 10.0, n_ground), np.full(n_ground, -SENSOR_HEIGHT),
    ])
    parts = [ground + rng.normal(0.0, 0.02, ground.shape)]
    for box in boxes:
        local = rng.uniform(-0.5, 0.5, (250, 3)) * box[3:6] + [0.0, 0.0, box[5] / 2]
        cos, sin = np.cos(box[6]), np.sin(box[6])
        rotated = np.column_stack(
            [local[:, 0] * cos - local[:, 1] * sin, local[:, 0] * sin + local[:, 1] * cos, local[:, 2]]
        )
        parts.append(rotated + box[:3])
    xyz = np.concatenate(parts)
    intensity = rng.uniform(0.0, 1.0, (len(xyz), 1))
    return np.hstack([xyz, intensity]).astype(np.float32), boxes


def _instances(boxes: np.ndarray) -> list[dict]:
    lidar2cam = torch.from_numpy(LIDAR2CAM).float()
    camera = LiDARInstance3DBoxes(torch.from_numpy(boxes)).convert_to(Box3DMode.CAM, rt_mat=lidar2cam)
    corners = points_cam2img(camera.corners.reshape(-1, 3), torch.from_numpy(CAM2IMG).float()).reshape(-1, 8, 2)
    instances = []
    for i, (box, pixels) in enumerate(zip(camera.tensor.numpy(), corners.numpy())):
        low = np.clip(pixels.min(axis=0), 0, IMAGE)
        high = np.clip(pixels.max(axis=0), 0, IMAGE)
        alpha = float(-np.arctan2(-box[1], box[0]) + box[6])  # as KITTI: rotation_y minus the viewing angle
        instances.append({
            "bbox": [float(low[0]), float(low[1]), float(high[0]), float(high[1])], "bbox_label": CAR,
            "bbox_3d": [float(v) for v in box], "bbox_label_3d": CAR, "depth": float(box[2]),
            "center_2d": [float((low[0] + high[0]) / 2), float((low[1] + high[1]) / 2)], "num_lidar_pts": 250,
            "difficulty": 0, "truncated": 0.0, "occluded": 0, "alpha": alpha, "score": 0.0, "index": i, "group_id": i,
        })
    return instances


def write_kitti_like(
    root: Path, n_train: int, n_val: int, seed: int = 0, ground_points: int = 1500
) -> dict[str, list[np.ndarray]]:
    """Write ``n_train`` training and ``n_val`` validation frames (files ``000000.bin``...) under
    ``root``, each with ``ground_points`` ground points and 250 points per car; returns each split's
    LiDAR boxes (bottom-centred, ``x_size`` along the heading) by dataset index."""
    rng = np.random.default_rng(seed)
    velodyne = root / "training" / "velodyne_reduced"
    velodyne.mkdir(parents=True, exist_ok=True)
    metainfo = {"categories": {"Pedestrian": 0, "Cyclist": 1, "Car": 2}, "dataset": "kitti", "info_version": "1.1"}
    splits = {"train": range(n_train), "val": range(n_train, n_train + n_val)}
    written: dict[str, list[np.ndarray]] = {}
    for split, indices in splits.items():
        infos, written[split] = [], []
        for idx in indices:
            points, boxes = _frame(rng, int(rng.integers(1, 4)), ground_points)
            points.tofile(velodyne / f"{idx:06d}.bin")
            written[split].append(boxes)
            infos.append({
                "sample_idx": idx,
                "images": {
                    "CAM2": {
                        "img_path": f"{idx:06d}.png", "height": IMAGE[1], "width": IMAGE[0],
                        "cam2img": CAM2IMG.tolist(), "lidar2cam": LIDAR2CAM.tolist(),
                        "lidar2img": (CAM2IMG @ LIDAR2CAM).tolist(),
                    },
                    "R0_rect": np.eye(4).tolist(),
                },
                "lidar_points": {
                    "num_pts_feats": 4, "lidar_path": f"{idx:06d}.bin", "Tr_velo_to_cam": LIDAR2CAM.tolist(),
                    "Tr_imu_to_velo": np.eye(4).tolist(),
                },
                "instances": _instances(boxes),
            })
        with open(root / f"kitti_infos_{split}.pkl", "wb") as f:
            pickle.dump({"metainfo": metainfo, "data_list": infos}, f)
    return written
