"""ObjectDetectionTracer overhead on a torchvision Faster R-CNN validation loop, as ratios in one run.

    python benchmarks/bench_detection_tracer.py [--arch resnet50|mobilenet_v3] [--size 320]
        [--batch-size 2] [--batches 8] [--rounds 5] [--threads N]

A randomly initialised torchvision Faster R-CNN (91 classes) on the CPU, images of ``--size``
pixels (the transform's min/max size set to it), 7 ground-truth boxes per image (COCO's mean).
The model's ``roi_heads.score_thresh`` is lowered to 0.001 so every image has its full 100
detections, the worst case for per-object features. Every batch runs three ways back to back, in
an order that rotates: ``model(images)``, ``tracer(images, targets, ...)`` with features (box-head
features of detections and ground truth, pooled FPN image feature), and a tracer with
``record_features=False``; each epoch's ``wait_for_save`` counts on the traced sides. All three
run under ``torch.no_grad()`` as a validation loop does. Overhead = traced / plain - 1 per round,
median over rounds, for wall and process CPU time; the features' share is the difference between
the two traced ratios. On a shared machine those ratios are noisy, so the tracer's own work is also
measured directly: the time of each traced call minus the model's forward inside it (timed by
hooks on the model), over the plain loop's time. Target (DESIGN.md 8): <= 3%.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from torchvision.models import detection

from ml_debugger.store import LocalStore
from ml_debugger.training import ObjectDetectionTracer

BUILDERS = {
    "resnet50": detection.fasterrcnn_resnet50_fpn,
    "mobilenet_v3": detection.fasterrcnn_mobilenet_v3_large_fpn,
}


def batches(count: int, batch_size: int, size: int) -> list[tuple[torch.Tensor, list[dict], torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for b in range(count):
        images = torch.rand(batch_size, 3, size, size, generator=generator)
        targets = []
        for _ in range(batch_size):
            corner = torch.rand(7, 2, generator=generator) * size * 0.7
            extent = 8 + torch.rand(7, 2, generator=generator) * size * 0.3
            targets.append({"boxes": torch.cat([corner, corner + extent], 1).clamp(max=size),
                            "labels": torch.randint(1, 91, (7,), generator=generator)})
        out.append((images, targets, torch.arange(b * batch_size, (b + 1) * batch_size)))
    return out


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


class ForwardTimer:
    """Adds up the wall and CPU time of a module's forward passes (hooks around its forward)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.total = [0.0, 0.0]
        self._start = (0.0, 0.0)
        module.register_forward_pre_hook(self._begin)
        module.register_forward_hook(self._end)

    def _begin(self, module, args) -> None:
        self._start = clock()

    def _end(self, module, args, output) -> None:
        end = clock()
        self.total[0] += end[0] - self._start[0]
        self.total[1] += end[1] - self._start[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(BUILDERS), default="resnet50")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = BUILDERS[args.arch](weights=None, weights_backbone=None, num_classes=91,
                                min_size=args.size, max_size=args.size).eval()
    model.roi_heads.score_thresh = 0.001
    data = batches(args.batches, args.batch_size, args.size)

    with tempfile.TemporaryDirectory() as home, torch.no_grad():
        store = LocalStore(home)
        tracers = {
            "features": ObjectDetectionTracer(model, "bench_frcnn", "features", store=store),
            "no_features": ObjectDetectionTracer(model, "bench_frcnn", "plain", record_features=False, store=store),
        }
        runs: dict[str, Callable] = {
            "plain": lambda images, targets, ids, epoch: model(images),
            **{name: (lambda images, targets, ids, epoch, t=t: t(images, targets, input_ids=ids, dataset_type="val",
                                                                    n_epoch=epoch))
               for name, t in tracers.items()},
        }
        for name, run in runs.items():  # warm-up
            run(*data[0][:3], 0)
        for tracer in tracers.values():
            tracer.wait_for_save(0)
        ratios: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in tracers}
        own: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in tracers}
        timer = ForwardTimer(model)
        detections = []
        for epoch in range(1, args.rounds + 1):
            spent = {name: [0.0, 0.0] for name in runs}
            inside = {name: [0.0, 0.0] for name in runs}  # the model's forward within each call
            for i, (images, targets, ids) in enumerate(data):
                names = list(runs)
                shift = (i + epoch) % len(names)
                for name in names[shift:] + names[:shift]:
                    before = list(timer.total)
                    start = clock()
                    output = runs[name](images, targets, ids, epoch)
                    end = clock()
                    spent[name][0] += end[0] - start[0]
                    spent[name][1] += end[1] - start[1]
                    inside[name][0] += timer.total[0] - before[0]
                    inside[name][1] += timer.total[1] - before[1]
                    if name == "plain":
                        detections.extend(len(o["boxes"]) for o in output)
            for name, tracer in tracers.items():
                start = clock()
                tracer.wait_for_save(epoch)
                end = clock()
                spent[name][0] += end[0] - start[0]
                spent[name][1] += end[1] - start[1]
            for name in tracers:
                for k, clock_name in enumerate(("wall", "cpu")):
                    ratios[name][clock_name].append(spent[name][k] / spent["plain"][k])
                    own[name][clock_name].append((spent[name][k] - inside[name][k]) / spent["plain"][k])
        for tracer in tracers.values():
            tracer.close()

    print(f"Faster R-CNN {args.arch} FPN, {args.size} px, batch {args.batch_size}, {args.batches} batches, "
          f"{torch.get_num_threads()} torch threads, {args.rounds} rounds, "
          f"{statistics.mean(detections):.0f} detections per image")
    for name in tracers:
        for clock_name in ("wall", "cpu"):
            values = ratios[name][clock_name]
            print(f"  traced ({name}) {clock_name}: median {(statistics.median(values) - 1) * 100:+.1f}% "
                  f"(rounds: {', '.join(f'{(v - 1) * 100:+.1f}%' for v in values)}); the tracer's own work: "
                  f"median {statistics.median(own[name][clock_name]) * 100:.1f}% of the plain loop")
    for clock_name in ("wall", "cpu"):
        share = statistics.median(own["features"][clock_name]) - statistics.median(own["no_features"][clock_name])
        print(f"  features' share of the tracer's own work ({clock_name}): {share * 100:.1f}% of the plain loop")


if __name__ == "__main__":
    main()
