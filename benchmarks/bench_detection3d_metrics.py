"""nuScenes detection metrics on a nuScenes-val-sized set: ml_debugger versus the nuScenes devkit.

    python benchmarks/bench_detection3d_metrics.py [--frames 600] [--gt 40] [--dt 500] [--repeats 3]
        [--no-devkit]

The set (``tests/tasks/detection3d/synthetic.py: nuscenes_sized_set``): 600 frames, the 10
nuScenes classes with nuScenes' class mix, Poisson(40) GTs per frame within 60 m (10% NaN
velocities, 5% with zero points, attributes) and exactly 500 detections per frame (300,000:
1-3 jittered hits per GT, the rest low-scoring clutter). Timed, in one process:
``nuscenes_evaluate`` (filters, matching at 4 thresholds, AP, TP errors, NDS and the per-object
matching outputs) and the devkit's ``DetectionEval.evaluate()`` (``accumulate`` for 10 classes x
4 thresholds, ``calc_ap``, ``calc_tp``, ``DetectionMetrics``) on the same rows; the devkit's
loading steps (building ``EvalBoxes``, ``add_center_dist``, ``filter_eval_boxes``) are timed
apart. Per-class APs and TP errors and the summary are checked against the devkit. Memory: the
tracemalloc peak of our call (numpy allocations are traced) and the process's peak RSS before and
after it. Target (DESIGN.md section 8): >= 10x faster than the devkit.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests/

from ml_debugger.tasks.detection3d.nuscenes_metrics import TP_METRICS, nuscenes_evaluate
from tests.tasks.detection3d.synthetic import CLASS_NAMES, devkit_evaluation, nuscenes_sized_set


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _timed(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``repeats`` calls, and the last result."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--gt", type=int, default=40, help="mean GTs per frame")
    parser.add_argument("--dt", type=int, default=500, help="detections per frame")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-devkit", action="store_true", help="time ml_debugger only")
    args = parser.parse_args()

    started = time.perf_counter()
    data = nuscenes_sized_set(args.seed, n_frames=args.frames, gt_per_frame=args.gt, dt_per_frame=args.dt)
    print(
        f"data: {data.n_frames} frames, {data.n_gt} GTs ({data.n_gt / data.n_frames:.1f}/frame), {data.n_dt} "
        f"detections; generated in {time.perf_counter() - started:.1f} s; load {os.getloadavg()[0]:.2f}; "
        f"peak RSS so far {_peak_rss_gib():.2f} GiB"
    )
    rss_before = _peak_rss_gib()
    ours_wall, ours_cpu, ours = _timed(lambda: nuscenes_evaluate(data, class_names=CLASS_NAMES), args.repeats)
    rss_after = _peak_rss_gib()
    tracemalloc.start()
    nuscenes_evaluate(data, class_names=CLASS_NAMES)
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**30
    tracemalloc.stop()
    rows = [("ml_debugger nuscenes_evaluate", ours_wall, ours_cpu)]

    if not args.no_devkit:
        started = time.perf_counter()
        run = devkit_evaluation(data, CLASS_NAMES)[0].evaluate
        print(f"devkit: EvalBoxes built, ego distances added and filtered in {time.perf_counter() - started:.1f} s (not timed below)")
        wall, cpu, (metrics, _) = _timed(run, 1)
        rows.append(("devkit DetectionEval.evaluate (accumulate, calc_ap, calc_tp)", wall, cpu))
        per_class = ours.per_class.set_index("name")
        ap_diff = max(
            abs(per_class.loc[name, f"ap_{th}"] - metrics.get_label_ap(name, th))
            for name in per_class.index for th in ours.config.dist_ths
        )  # fmt: skip
        tp_diff = np.nanmax([
            abs(per_class.loc[name, metric] - metrics.get_label_tp(name, metric))
            for name in per_class.index for metric in TP_METRICS
        ])  # fmt: skip
        summary = metrics.serialize()
        reference = [summary["mean_ap"], summary["nd_score"], *(summary["tp_errors"][m] for m in TP_METRICS)]
        summary_diff = np.abs(np.array(list(ours.metrics.values())) - reference).max()
        print(f"devkit: max |AP difference| {ap_diff:.1e}, |TP error difference| {tp_diff:.1e}, |summary difference| {summary_diff:.1e}")

    print()
    print(f"{'what':<64} {'wall s':>8} {'CPU s':>8} {'this / ours':>12}")
    for name, wall, cpu in rows:
        print(f"{name:<64} {wall:>8.2f} {cpu:>8.2f} {wall / ours_wall:>7.1f} wall {cpu / ours_cpu:>5.1f} CPU")
    print()
    print(
        f"memory: tracemalloc peak of nuscenes_evaluate {traced_peak:.2f} GiB; "
        f"process peak RSS {rss_before:.2f} GiB before it, {rss_after:.2f} GiB after"
    )
    print("metrics:", {key: round(value, 4) for key, value in ours.metrics.items()})


if __name__ == "__main__":
    main()
