"""The whole 2-D detection evaluation on a COCO-val-sized set, against faster-coco-eval and pycocotools.

    python benchmarks/bench_detection_evaluation.py [--images 5000] [--classes 80] [--repeats 3]
        [--pycocotools] [--variants plain,features] [--dim 64] [--no-tracemalloc] [--profile FILE]

The set is ``tests/tasks/detection2d/synthetic.py: coco_sized_set`` (5,000 images, 80 classes,
Poisson(7) GTs and exactly 100 detections per image). It is recorded once, outside the timing,
through the real engine (``TraceSession`` -> Parquet part -> catalog) into a temporary
``LocalStore``, in batches of 32 images with class names, as a validation loop would: once
without per-box features ("plain") and once with 64-d float16 features for every GT and
detection ("features"). Timed, in one process, alternating so that the ratios share the machine's state:

- ``Evaluator("det", "v1").request_evaluation()`` end to end (reading the Parquet parts, loading,
  COCO metrics, TIDE, units, signals, hotspots, categories, codes, tables, saving the result);
- faster-coco-eval's ``evaluate(); accumulate()`` (mAP alone) on COCO objects already loaded;
- with ``--pycocotools``, pycocotools' ``evaluate(); accumulate()`` once (about two minutes).

Wall and CPU time (the process's, all threads) are reported per call, median over ``--repeats``,
and the evaluation is split by step (timers wrapped around the functions the evaluation calls).
Memory: the peak RSS of a fresh process that evaluates once (this one holds the inputs and the
references' COCO objects), this process's peak RSS before and after the timed calls, and the
tracemalloc peak of one more evaluation of each variant (numpy allocations are traced). Target (issue 10, section 5):
the no-feature evaluation no slower than faster-coco-eval alone, under 4 GB.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests/

from step_timer import StepTimer  # noqa: E402  (beside this script)

import ml_debugger.tasks.detection2d.evaluation as evaluation_module
from ml_debugger.evaluator import Evaluator
from ml_debugger.store import LocalStore
from ml_debugger.tasks.detection2d.detection_set import DetectionSet
from ml_debugger.tasks.detection2d.matching import overlapping_pairs
from ml_debugger.core import TraceSession
from ml_debugger.tasks.detection2d import ImagePredictions, ImageTargets, Thresholds, make_detection_batch
from tests.tasks.detection2d.recording import as_stored
from tests.tasks.detection2d.synthetic import coco_dicts, coco_sized_set

STEPS = {  # name in evaluation.py -> step label, in the order they run
    "load_detection_data": "load (Arrow -> DetectionSet)",
    "coco_and_tide": "COCO metrics + TIDE, concurrent",
    "coco_evaluate": "COCO metrics",
    "tide_errors": "TIDE",
    "build_units": "units",
    "per_class_rows": "tables",
    "tide_rows": "tables",
    "add_signals": "signals",
    "find_hotspots": "hotspots",
    "assign_categories": "categories",
    "detect_codes": "codes",
    "codes_per_unit": "codes",
    "metrics_row": "tables",
    "metrics_table": "tables",
    "category_ratios": "tables",
    "issues_table": "tables",
    "code_catalog": "tables",
    "concat": "tables",
    "heatmaps": "tables",
}
STORE_STEPS = {"read_traces": "read Parquet parts", "save_result": "save result (Parquet)"}


def install_timers(timer: StepTimer) -> None:
    for name, label in STEPS.items():
        if hasattr(evaluation_module, name):  # coco_and_tide: from the commit that runs them at once
            setattr(evaluation_module, name, timer.wrap(label, getattr(evaluation_module, name)))
    for name, label in STORE_STEPS.items():
        setattr(LocalStore, name, timer.wrap(label, getattr(LocalStore, name)))


def box_features(data: DetectionSet, dim: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """float16 features: GTs near their class's centre; a detection near the GT it overlaps most
    (same image), more so the better it overlaps; background detections anywhere."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(int(data.gt_labels.max()) + 1, dim))
    gt = centres[data.gt_labels] + 0.7 * rng.normal(size=(data.n_gt, dim))
    pairs = overlapping_pairs(data)
    best = np.full(data.n_dt, -1)
    best_iou = np.zeros(data.n_dt)
    order = np.argsort(pairs.iou, kind="stable")
    best[pairs.dt[order]] = pairs.gt[order]
    best_iou[pairs.dt[order]] = pairs.iou[order]
    dt = rng.normal(size=(data.n_dt, dim)) * 1.5
    near = best >= 0
    noise = (1.2 - best_iou[near])[:, None] * rng.normal(size=(int(near.sum()), dim))
    dt[near] = gt[best[near]] + noise
    return gt.astype(np.float16), dt.astype(np.float16)


def record(store: LocalStore, data: DetectionSet, features: tuple, batch: int = 32) -> None:
    """Record ``data`` as a validation loop would: batches of ``batch`` images, with class names
    (image ``i`` has id ``img{i}``), then ``wait_for_save``."""
    gt_features, dt_features = features
    gt_bounds = np.searchsorted(data.gt_image, np.arange(data.n_images + 1))
    dt_bounds = np.searchsorted(data.dt_image, np.arange(data.n_images + 1))
    names = [f"class-{label}" for label in range(int(max(data.gt_labels.max(), data.dt_labels.max())) + 1)]
    session = TraceSession("det", "v1", "detection2d", store=store)
    for first in range(0, data.n_images, batch):
        images = range(first, min(first + batch, data.n_images))
        targets, predictions = [], []
        for i in images:
            g, d = slice(gt_bounds[i], gt_bounds[i + 1]), slice(dt_bounds[i], dt_bounds[i + 1])
            targets.append(ImageTargets(
                boxes=data.gt_boxes[g].astype(np.float32), labels=data.gt_labels[g], iscrowd=data.gt_iscrowd[g],
                area=data.gt_area[g].astype(np.float32), features=None if gt_features is None else gt_features[g],
            ))
            predictions.append(ImagePredictions(
                boxes=data.dt_boxes[d].astype(np.float32), scores=data.dt_scores[d].astype(np.float32),
                labels=data.dt_labels[d], features=None if dt_features is None else dt_features[d],
            ))
        ids = [f"img{i}" for i in images]
        session.record(
            make_detection_batch(
                predictions, targets, input_hashes=[f"hash-{i}" for i in ids], input_ids=ids,
                image_sizes=[[640, 480]] * len(ids), thresholds=Thresholds(0.05, 0.5, 100), label_names=names,
            ),
            dataset_type="val", n_epoch=0,
        )
    session.wait_for_save()
    session.close()


def peak_rss_gib() -> float:
    """Peak resident memory of this process: ``VmHWM`` (reset by exec, unlike ``ru_maxrss``,
    which a child started by ``subprocess`` inherits from its parent), else ``ru_maxrss``."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def reference_run(module: str, data: DetectionSet):
    """A function running ``evaluate(); accumulate()`` of a reference on COCO objects loaded now."""
    dataset, results = coco_dicts(data)
    with contextlib.redirect_stdout(io.StringIO()):
        if module == "faster_coco_eval":
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as COCOeval

            gt = COCO(dataset)
        else:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            gt = COCO()
            gt.dataset = dataset
            gt.createIndex()
        dt = gt.loadRes(results)

    def run() -> np.ndarray:
        with contextlib.redirect_stdout(io.StringIO()):
            if module == "faster_coco_eval":
                evaluator = COCOeval(gt, dt, iouType="bbox", print_function=lambda *args: None)
            else:
                evaluator = COCOeval(gt, dt, iouType="bbox")
            evaluator.evaluate()
            evaluator.accumulate()
        return evaluator

    def stats(evaluator) -> np.ndarray:
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator.summarize()
        return np.asarray(evaluator.stats[:12])

    return run, stats


def timed(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pycocotools", action="store_true", help="also time pycocotools once (about 2 minutes)")
    parser.add_argument("--variants", default="plain,features", help="plain, features or both (comma-separated)")
    parser.add_argument("--profile", help="write a cProfile of one evaluation per variant to FILE.<variant>")
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # evaluate the store at this path once, print peak RSS
    args = parser.parse_args()
    if args.child:
        before = peak_rss_gib()
        Evaluator("det", "v1", store=LocalStore(Path(args.child))).request_evaluation()
        print(json.dumps({"before": before, "peak": peak_rss_gib()}))
        return
    variants = args.variants.split(",")

    started = time.perf_counter()
    data = coco_sized_set(args.seed, n_images=args.images, n_classes=args.classes)
    stored = as_stored(data)
    print(
        f"data: {data.n_images} images, {len(np.unique(data.gt_labels))} classes, {data.n_gt} GTs, "
        f"{data.n_dt} detections; generated in {time.perf_counter() - started:.1f} s"
    )
    home = Path(tempfile.mkdtemp(prefix="bench-det-eval-"))
    stores = {}
    for variant in variants:
        started = time.perf_counter()
        store = LocalStore(home / variant)
        features = box_features(data, args.dim) if variant == "features" else (None, None)
        record(store, data, features)
        stores[variant] = store
        print(f"{variant}: recorded in {time.perf_counter() - started:.1f} s (not timed)")
    fce_run, fce_stats = reference_run("faster_coco_eval", stored)
    rss_before = peak_rss_gib()
    print(f"peak RSS before evaluating: {rss_before:.2f} GiB")

    timer = StepTimer()
    install_timers(timer)
    times: dict[str, list[tuple[float, float]]] = defaultdict(list)
    splits: dict[str, list[dict[str, tuple[float, float]]]] = defaultdict(list)
    results = {}
    for repeat in range(args.repeats):
        for variant in variants:
            timer.reset()
            wall, cpu, result = timed(Evaluator("det", "v1", store=stores[variant]).request_evaluation)
            times[variant].append((wall, cpu))
            splits[variant].append({k: (timer.wall[k], timer.cpu[k]) for k in timer.wall})
            results[variant] = result
        wall, cpu, evaluator = timed(fce_run)
        times["faster-coco-eval"].append((wall, cpu))
        print(
            f"repeat {repeat + 1}: "
            + ", ".join(f"{name} {t[-1][0]:.2f} s (CPU {t[-1][1]:.2f})" for name, t in times.items())
        )
    ours = results[variants[0]].metrics_summary().iloc[0]
    keys = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large",
            "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]
    ours_stats = ours[keys].to_numpy(dtype=np.float64)
    print(f"faster-coco-eval: max |stat difference| = {np.abs(fce_stats(evaluator) - ours_stats).max():.2e}")
    rss_after = peak_rss_gib()
    if args.pycocotools:
        run, stats = reference_run("pycocotools", stored)
        wall, cpu, evaluator = timed(run)
        times["pycocotools"].append((wall, cpu))
        print(f"pycocotools: {wall:.1f} s (CPU {cpu:.1f}); max |stat difference| = "
              f"{np.abs(stats(evaluator) - ours_stats).max():.2e}; peak RSS now {peak_rss_gib():.2f} GiB")

    child_rss = {}
    for variant in variants:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(home / variant)], capture_output=True, text=True, check=True
        )
        child_rss[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    traced = {}
    if not args.no_tracemalloc:
        for variant in variants:
            tracemalloc.start()
            Evaluator("det", "v1", store=stores[variant]).request_evaluation()
            traced[variant] = tracemalloc.get_traced_memory()[1] / 2**30
            tracemalloc.stop()
    if args.profile:
        for variant in variants:
            profiler = cProfile.Profile()
            profiler.runcall(Evaluator("det", "v1", store=stores[variant]).request_evaluation)
            profiler.dump_stats(f"{args.profile}.{variant}")

    reference = statistics.median(w for w, _ in times["faster-coco-eval"])
    reference_cpu = statistics.median(c for _, c in times["faster-coco-eval"])
    print()
    print(f"{'what':<44} {'wall s':>8} {'CPU s':>8} {'wall / fce':>11} {'CPU / fce':>10}")
    for name, values in times.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        label = {"plain": "whole evaluation, no features", "features": f"whole evaluation, {args.dim}-d features"}.get(
            name, f"{name} evaluate+accumulate"
        )
        print(f"{label:<44} {wall:>8.2f} {cpu:>8.2f} {wall / reference:>11.2f} {cpu / reference_cpu:>10.2f}")
    print("per-repeat ratios (wall):", {
        v: [round(times[v][i][0] / times["faster-coco-eval"][i][0], 2) for i in range(args.repeats)] for v in variants
    })
    for variant in variants:
        labels = list(dict.fromkeys([STORE_STEPS["read_traces"], *STEPS.values(), STORE_STEPS["save_result"]]))
        labels = [label for label in labels if any(label in s for s in splits[variant])]
        total = statistics.median(w for w, _ in times[variant])
        print(f"\nsplit by step, {variant} (median wall s / CPU s over repeats; share of the median total)")
        for label in labels:
            walls = [s.get(label, (0.0, 0.0))[0] for s in splits[variant]]
            cpus = [s.get(label, (0.0, 0.0))[1] for s in splits[variant]]
            wall = statistics.median(walls)
            print(f"  {label:<32} {wall:>7.2f} {statistics.median(cpus):>7.2f} {wall / total:>6.0%}")
        other = [  # per repeat: the total less its steps
            (t[0] - sum(w for w, _ in s.values()), t[1] - sum(c for _, c in s.values()))
            for t, s in zip(times[variant], splits[variant])
        ]
        wall, cpu = statistics.median(w for w, _ in other), statistics.median(c for _, c in other)
        print(f"  {'other (catalog, glue, GC)':<32} {wall:>7.2f} {cpu:>7.2f} {wall / total:>6.0%}")
    print()
    print(f"memory: peak RSS {rss_before:.2f} GiB before evaluating (inputs, recorded sets, faster-coco-eval's "
          f"COCO objects), {rss_after:.2f} GiB after the evaluations and faster-coco-eval")
    for variant, peak in traced.items():
        print(f"  tracemalloc peak of one evaluation, {variant}: {peak:.2f} GiB")
    for variant, rss in child_rss.items():
        print(f"  peak RSS of a fresh process evaluating once, {variant}: {rss['peak']:.2f} GiB "
              f"({rss['before']:.2f} GiB after imports)")
    print("stats:", {k: round(float(v), 4) for k, v in zip(keys, ours_stats)})
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
