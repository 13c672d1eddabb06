"""What ObjectDetection3DTracer adds per frame, at nuScenes size and on a tiny real PointPillars.

    python benchmarks/bench_detection3d_tracer.py [--frames 20] [--points 300000] [--threads 1]

Part 1 (nuScenes-sized frames): a stand-in CenterPoint whose forward returns precomputed outputs
(300 detections with velocities per frame, a 384 x 180 x 180 BEV map from its ``pts_neck``), so
the time of a traced call is the tracer's own: hashing the frame (``--points`` x 5 float32, plus
six 3 x 256 x 704 float32 camera images with ``--cameras``), converting and filtering the
detections, counting points in 300 predicted and 60 ground-truth boxes, sampling the BEV map at
every box centre, validating and queueing the row. Each stage is also timed alone.

Part 2 (a real model): MMDetection3D's KITTI PointPillars from its shipped config, shrunk to a
20 m range, on 2,000-point clouds on the CPU; every frame runs untraced and traced back to back
(alternating which first); overhead = traced / untraced - 1, median over frames.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ml_debugger.store import LocalStore
from ml_debugger.training import ObjectDetection3DTracer
from ml_debugger.training.detection3d._points import count_points_in_boxes, frames_of, hash_frames


class _Neck(nn.Module):
    def __init__(self, bev: torch.Tensor) -> None:
        super().__init__()
        self.bev = bev

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.bev]


class CenterPoint(nn.Module):
    """Returns the same nuScenes-sized result dicts every call (MMDetection3D 0.x format)."""

    def __init__(self, results: list[dict], bev: torch.Tensor) -> None:
        super().__init__()
        self.pts_neck = _Neck(bev)
        self.pts_bbox_head = nn.Module()
        self.pts_bbox_head.test_cfg = {"score_threshold": 0.1, "nms_thr": 0.2, "max_per_img": 500}
        self.pts_bbox_head.num_classes = [1, 2, 2, 1, 2, 2]
        self.pc_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
        self.results = results

    def forward(self, **inputs) -> list[dict]:
        self.pts_neck(None)
        return self.results


def nuscenes_frame(rng: np.random.Generator, points: int, cameras: bool) -> tuple[dict, list[dict], list[dict]]:
    from mmdet3d.structures import LiDARInstance3DBoxes

    cloud = torch.tensor(
        np.column_stack([rng.uniform(-54, 54, (points, 2)), rng.uniform(-3, 2, points), rng.uniform(size=(points, 2))]),
        dtype=torch.float32,
    )
    n = 300
    boxes = np.column_stack(
        [
            rng.uniform(-50, 50, (n, 2)),
            rng.uniform(-2, 0, n),
            rng.uniform(1.5, 5, n),
            rng.uniform(0.6, 2.5, n),
            rng.uniform(1, 2, n),
            rng.uniform(-3, 3, n),
            rng.normal(size=(n, 2)),
        ]
    )
    result = {
        "pts_bbox": {
            "boxes_3d": LiDARInstance3DBoxes(torch.tensor(boxes, dtype=torch.float32), box_dim=9),
            "scores_3d": torch.tensor(rng.uniform(0.1, 1, n), dtype=torch.float32),
            "labels_3d": torch.tensor(rng.integers(0, 10, n)),
        }
    }
    truth = {
        "boxes_3d": torch.tensor(boxes[:60, :7], dtype=torch.float32),
        "labels_3d": torch.tensor(rng.integers(0, 10, 60)),
    }
    inputs = {"points": [cloud]}
    if cameras:
        inputs["img"] = torch.rand(1, 6, 3, 256, 704)
    return inputs, [result], [truth]


def part1(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    frames = [nuscenes_frame(rng, args.points, args.cameras) for _ in range(args.frames)]
    bev = torch.rand(1, 384, 180, 180)
    with tempfile.TemporaryDirectory() as home:
        model = CenterPoint(frames[0][1], bev)
        tracer = ObjectDetection3DTracer(model, "bench3d", "v1", store=LocalStore(home))
        traced = []
        for inputs, results, truth in frames:
            model.results = results
            start = time.perf_counter()
            tracer(inputs, truth, dataset_type="val")
            traced.append(time.perf_counter() - start)
        start = time.perf_counter()
        tracer.wait_for_save()
        save = time.perf_counter() - start
        tracer.close()
    stages = {"hash the frame": [], "count points in 360 boxes": [], "sample BEV at 360 centres": []}
    for inputs, results, truth in frames:
        parsed = frames_of(inputs)
        start = time.perf_counter()
        hash_frames(parsed)
        stages["hash the frame"].append(time.perf_counter() - start)
        boxes = np.concatenate([results[0]["pts_bbox"]["boxes_3d"].tensor[:, :7].numpy(), truth[0]["boxes_3d"].numpy()])
        start = time.perf_counter()
        count_points_in_boxes(parsed[0].points, boxes)
        stages["count points in 360 boxes"].append(time.perf_counter() - start)
        grid = torch.rand(1, 1, 360, 2) * 2 - 1
        start = time.perf_counter()
        torch.nn.functional.grid_sample(bev, grid, align_corners=False)[0, :, 0].T.numpy().astype(np.float16)
        stages["sample BEV at 360 centres"].append(time.perf_counter() - start)
    what = f"{args.points:,} points x 5" + (" + 6 cameras 3x256x704" if args.cameras else "")
    print(f"part 1: {args.frames} nuScenes-sized frames ({what}, 300 detections, 60 GT, BEV 384x180x180)")
    print(
        f"  traced call (tracer only): median {1e3 * statistics.median(traced):.1f} ms per frame, "
        f"min {1e3 * min(traced):.1f} ms; wait_for_save {1e3 * save:.0f} ms"
    )
    for name, times in stages.items():
        print(f"    {name}: median {1e3 * statistics.median(times):.1f} ms, min {1e3 * min(times):.1f} ms")


def part2(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ml_debugger.training.detection3d._mmdet3d import data_batch
    from tests.training.detection3d import models

    model = models.pointpillars()
    clouds = [models.cloud(i) for i in range(args.frames)]
    target = [{"boxes_3d": torch.tensor([[8.0, 1.0, -0.8, 1.6, 3.9, 1.56, 0.3]]), "labels_3d": torch.tensor([0])}]
    ratios = []
    with tempfile.TemporaryDirectory() as home:
        tracer = ObjectDetection3DTracer(model, "bench_pp", "v1", store=LocalStore(home))
        tracer(clouds[0], target, dataset_type="val")  # warm-up
        for i, cloud in enumerate(clouds):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            times = [0.0, 0.0]
            for which in order:
                start = time.perf_counter()
                if which == 0:
                    model.test_step(data_batch(cloud))
                else:
                    tracer(cloud, target, dataset_type="val")
                times[which] = time.perf_counter() - start
            ratios.append(times[1] / times[0] - 1)
        tracer.wait_for_save()
        tracer.close()
    print(
        f"part 2: tiny PointPillars on the CPU, {args.frames} frames: "
        f"overhead median {100 * statistics.median(ratios):+.1f}% "
        f"(quartiles {100 * np.percentile(ratios, 25):+.1f}% / {100 * np.percentile(ratios, 75):+.1f}%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--points", type=int, default=300_000)
    parser.add_argument("--cameras", action="store_true", help="add six camera images to each frame")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    part1(args)
    part2(args)


if __name__ == "__main__":
    main()
