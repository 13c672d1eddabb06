"""COCO mAP/mAR and TIDE on a COCO-val-sized set: ml_debugger versus faster-coco-eval and pycocotools.

    python benchmarks/bench_detection_metrics.py [--images 5000] [--classes 80] [--repeats 3]
        [--pycocotools] [--tidecv]

The set (``tests/tasks/detection2d/synthetic.py: coco_sized_set``): 5,000 images, 80 classes,
Poisson(7) GTs and exactly 100 detections per image (jittered copies of the GTs, duplicates,
wrong labels, low-scoring background boxes). Timed, in one process: ``coco_evaluate`` and
``tide_errors``; faster-coco-eval's ``evaluate(); accumulate(); summarize()``; with
``--pycocotools`` pycocotools' (about two minutes); with ``--tidecv`` tidecv's run and dAPs.
Building the references' COCO objects from dicts is timed apart (it is loading, not evaluating).
The 12 stats (and with ``--tidecv`` the dAPs) are checked against the references. Memory: the
tracemalloc peak of our two calls (numpy allocations are traced) and the process's peak RSS
before and after them. Target: ours together no slower than faster-coco-eval alone, < 4 GB.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests/

from ml_debugger.tasks.detection2d.coco_metrics import coco_evaluate
from ml_debugger.tasks.detection2d.tide import tide_errors
from tests.tasks.detection2d.synthetic import coco_dicts, coco_sized_set, tidecv_data


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


def _reference_eval(module: str, dataset: dict, results: list[dict]):
    """COCO objects of a reference (timed apart) and a function running its evaluation."""
    if module == "faster_coco_eval":
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval

        def make(gt, dt):
            return COCOeval(gt, dt, iouType="bbox", print_function=lambda *args: None)
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        def make(gt, dt):
            return COCOeval(gt, dt, iouType="bbox")

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(dataset) if module == "faster_coco_eval" else COCO()
        if module != "faster_coco_eval":
            gt.dataset = dataset
            gt.createIndex()
        dt = gt.loadRes(results)

    def run():
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator = make(gt, dt)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        return np.asarray(evaluator.stats[:12])

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pycocotools", action="store_true", help="also time pycocotools (about 2 minutes)")
    parser.add_argument("--tidecv", action="store_true", help="also time tidecv and compare its dAPs")
    args = parser.parse_args()

    started = time.perf_counter()
    data = coco_sized_set(args.seed, n_images=args.images, n_classes=args.classes)
    print(
        f"data: {data.n_images} images, {len(np.unique(data.gt_labels))} classes, {data.n_gt} GTs "
        f"({data.n_gt / data.n_images:.1f}/image), {data.n_dt} detections; generated in "
        f"{time.perf_counter() - started:.1f} s; peak RSS so far {_peak_rss_gib():.2f} GiB"
    )
    rss_before = _peak_rss_gib()
    coco_wall, coco_cpu, ours = _timed(lambda: coco_evaluate(data), args.repeats)
    tide_wall, tide_cpu, tide = _timed(lambda: tide_errors(data), args.repeats)
    rss_after = _peak_rss_gib()
    tracemalloc.start()
    coco_evaluate(data)
    tide_errors(data)
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**30
    tracemalloc.stop()
    ours_wall = coco_wall + tide_wall
    rows = [
        ("ml_debugger coco_evaluate", coco_wall, coco_cpu),
        ("ml_debugger tide_errors", tide_wall, tide_cpu),
        ("ml_debugger both", ours_wall, coco_cpu + tide_cpu),
    ]
    stats = np.array(list(ours.stats.values()))

    started = time.perf_counter()
    dataset, results = coco_dicts(data)
    print(f"COCO dicts built in {time.perf_counter() - started:.1f} s (not timed below)")
    references = ["faster_coco_eval"] + (["pycocotools"] if args.pycocotools else [])
    for module in references:
        started = time.perf_counter()
        run = _reference_eval(module, dataset, results)
        print(f"{module}: COCO objects loaded in {time.perf_counter() - started:.1f} s (not timed below)")
        wall, cpu, ref_stats = _timed(run, 1 if module == "pycocotools" else args.repeats)
        rows.append((f"{module} evaluate+accumulate+summarize", wall, cpu))
        print(f"{module}: max |stat difference| = {np.abs(ref_stats - stats).max():.2e}")

    if args.tidecv:
        from tidecv import TIDE

        gt, preds = tidecv_data(data)
        wall, cpu = time.perf_counter(), time.process_time()
        run = TIDE().evaluate(gt, preds, mode=TIDE.BOX)
        main_errors = {error.short_name: value for error, value in run.fix_main_errors().items()}
        rows.append(
            ("tidecv evaluate+fix_main_errors", time.perf_counter() - wall, time.process_time() - cpu)
        )
        ours_dap = dict(zip(("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss"), tide.dap.values()))
        worst = max(abs(ours_dap[name] * 100 - value) for name, value in main_errors.items())
        print(
            f"tidecv: mAP {run.ap:.4f} vs {tide.ap * 100:.4f}; max |dAP difference| = {worst:.2e} (AP points)"
        )

    print()
    print(f"{'what':<48} {'wall s':>8} {'CPU s':>8} {'ours / this':>12}")
    for name, wall, cpu in rows:
        print(f"{name:<48} {wall:>8.2f} {cpu:>8.2f} {ours_wall / wall:>12.2f}")
    print()
    print(
        f"memory: tracemalloc peak of coco_evaluate + tide_errors {traced_peak:.2f} GiB; "
        f"process peak RSS {rss_before:.2f} GiB before them, {rss_after:.2f} GiB after"
    )
    print("stats:", {key: round(value, 4) for key, value in ours.stats.items()})
    print(
        "TIDE:",
        f"ap={tide.ap:.4f}",
        {key: round(value * 100, 2) for key, value in tide.dap.items()},
        tide.counts,
    )


if __name__ == "__main__":
    main()
