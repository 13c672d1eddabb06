"""The whole 3-D detection evaluation on a nuScenes-val-sized set, against the nuScenes devkit.

    python benchmarks/bench_detection3d_evaluation.py [--frames 6019] [--devkit-frames 600] [--gt 20]
        [--dt 500] [--repeats 2] [--seed 0] [--no-devkit] [--profile FILE]

The set is ``tests/tasks/detection3d/synthetic.py: nuscenes_sized_set`` with nuScenes-val's size:
6,019 frames, the 10 classes of the ``detection_cvpr_2019`` configuration in nuScenes' class mix,
Poisson(20) GTs per frame (about 120k) within 60 m (so every class range, 30-50 m, cuts some),
velocities (10% of GTs NaN), attributes, point counts (5% zero), and exactly 500 detections per
frame (about 3M: 1-3 jittered hits per GT scoring Beta(5, 2), the rest clutter scoring Beta(1, 12)).
It is recorded once, outside the timing, through the real engine as a validation loop would
(``TraceSession`` + ``make_detection3d_batch``, batches of 32 frames with class names, float32 as
traces keep them) into a temporary ``LocalStore``: all frames as model ``det3d-full`` and the first
``--devkit-frames`` as ``det3d-part`` (the same boxes).

Each side runs in a fresh child process, one after the other, which reports its wall and CPU
time and its peak RSS (``VmHWM``):

- ours: ``Evaluator(model, "v1").request_evaluation()`` end to end (read the Parquet parts, load,
  nuScenes metrics and matching, units, signals, hotspots, categories, codes, range table,
  bird's-eye-view heatmaps, save the result), median of ``--repeats``; the step split comes from
  timers wrapped around the functions ``detection3d/evaluation.py`` calls, so "metrics" is
  ``nuscenes_evaluate`` alone;
- the devkit: the same boxes read back from the store (``load_detection3d_data``), then the
  devkit's ``EvalBoxes`` / ``add_center_dist`` / ``filter_eval_boxes`` (loading, timed apart) and
  ``DetectionEval.evaluate()`` itself (``accumulate`` per class and threshold, ``calc_ap``,
  ``calc_tp``, ``DetectionMetrics``): the devkit's evaluation of a results file, less its JSON
  parsing and database look-ups (see ``synthetic.devkit_evaluation``).

The devkit runs on ``det3d-part`` (``--devkit-frames``, default 600: the full set takes it many
minutes and many GiB); ours on both. The like-for-like ratio is on the same frames; the per-frame
ratio compares ours on the full set with the devkit on the part, and is labelled as such. The
numbers are compared on the devkit's frames: mAP, NDS, the mean TP errors, and per class the AP
at each threshold and the five TP errors.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests/

from step_timer import StepTimer  # noqa: E402  (beside this script)

from ml_debugger.core import TraceSession
from ml_debugger.store import LocalStore
from ml_debugger.tasks._columns import Thresholds
from ml_debugger.tasks.detection3d import FrameBoxes, make_detection3d_batch
from ml_debugger.tasks.detection3d.frame_set import FrameSet
from tests.tasks.detection3d.recording import as_stored
from tests.tasks.detection3d.synthetic import CLASS_NAMES, nuscenes_sized_set

TP_NAMES = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")
SUMMARY = {"map": "mean_ap", "nds": "nd_score"} | {m: m for m in ("mate", "mase", "maoe", "mave", "maae")}
MEAN_OF = dict(zip(("mate", "mase", "maoe", "mave", "maae"), TP_NAMES))
STEPS = {  # function in detection3d/evaluation.py -> step label
    "load_detection3d_data": "load (Arrow -> FrameSet)",
    "nuscenes_evaluate": "metrics (nuscenes_evaluate)",
    "build_units": "units",
    "add_object_signals": "signals",
    "find_hotspots": "hotspots",
    "assign_categories": "categories, codes",
    "detect_codes": "categories, codes",
    "codes_per_unit": "categories, codes",
    "category_ratios": "tables",
    "issues_table": "tables",
    "range_table": "tables",
    "heatmaps": "tables",
    "_metrics_row": "tables",
}


def peak_rss_gib() -> float:
    """Peak resident memory of this process (``VmHWM``, which exec resets), else ``ru_maxrss``."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _slice(frames: FrameSet, side: str, lo: int, hi: int) -> dict[str, np.ndarray]:
    bounds = np.searchsorted(getattr(frames, f"{side}_frame"), [lo, hi])
    rows = slice(*bounds)
    return {name: getattr(frames, f"{side}_{name}")[rows] for name in ("frame", "boxes", "labels", "velocities", "attributes")}


def head(frames: FrameSet, n: int) -> FrameSet:
    """The first ``n`` frames of ``frames`` (rows are grouped by frame)."""
    gt, dt = _slice(frames, "gt", 0, n), _slice(frames, "dt", 0, n)
    return FrameSet(
        n_frames=n, gt_frame=gt["frame"], gt_boxes=gt["boxes"], gt_labels=gt["labels"], gt_velocities=gt["velocities"],
        gt_attributes=gt["attributes"], gt_num_points=frames.gt_num_points[: len(gt["frame"])],
        dt_frame=dt["frame"], dt_boxes=dt["boxes"], dt_labels=dt["labels"], dt_velocities=dt["velocities"],
        dt_attributes=dt["attributes"], dt_scores=frames.dt_scores[: len(dt["frame"])],
    )


def record(store: LocalStore, frames: FrameSet, model: str, batch: int = 32) -> None:
    """Record ``frames`` as a validation loop would: batches of ``batch`` frames with class names."""
    names = [""] * (max(CLASS_NAMES) + 1)
    for label, name in CLASS_NAMES.items():
        names[label] = name
    gt_bounds = np.searchsorted(frames.gt_frame, np.arange(frames.n_frames + 1))
    dt_bounds = np.searchsorted(frames.dt_frame, np.arange(frames.n_frames + 1))
    session = TraceSession(model, "v1", "detection3d", store=store)
    for first in range(0, frames.n_frames, batch):
        ids = range(first, min(first + batch, frames.n_frames))
        targets, predictions = [], []
        for i in ids:
            g, d = slice(gt_bounds[i], gt_bounds[i + 1]), slice(dt_bounds[i], dt_bounds[i + 1])
            targets.append(FrameBoxes(
                boxes=frames.gt_boxes[g].astype(np.float32), labels=frames.gt_labels[g],
                velocities=frames.gt_velocities[g].astype(np.float32),
                num_points=frames.gt_num_points[g].astype(np.int32), attributes=tuple(frames.gt_attributes[g]),
            ))
            predictions.append(FrameBoxes(
                boxes=frames.dt_boxes[d].astype(np.float32), labels=frames.dt_labels[d],
                scores=frames.dt_scores[d].astype(np.float32), velocities=frames.dt_velocities[d].astype(np.float32),
                attributes=tuple(frames.dt_attributes[d]),
            ))
        session.record(
            make_detection3d_batch(
                predictions, targets, input_hashes=[f"hash-{i}" for i in ids], input_ids=[f"frame{i}" for i in ids],
                pc_range=[-61.2, -61.2, -10, 61.2, 61.2, 10], thresholds=Thresholds(0.0, None, 500), label_names=names,
            ),
            dataset_type="val", n_epoch=0,
        )
    session.wait_for_save()
    session.close()


def child_ours(store: LocalStore, model: str, repeats: int, profile: str | None) -> dict:
    """Evaluate ``model`` ``repeats`` times: times (median), steps, metrics, peak RSS."""
    import ml_debugger.tasks.detection3d.evaluation as module
    from ml_debugger.evaluator import Evaluator

    before = peak_rss_gib()
    timers = []
    runs = []
    for _ in range(repeats):
        timer = StepTimer()
        originals = {name: getattr(module, name) for name in STEPS}
        for name, label in STEPS.items():
            setattr(module, name, timer.wrap(label, originals[name]))
        for name in ("read_traces", "save_result"):
            setattr(LocalStore, name, timer.wrap(name.replace("_", " "), getattr(LocalStore, name)))
        wall, cpu = time.perf_counter(), time.process_time()
        result = Evaluator(model, "v1", store=store).request_evaluation()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
        for name, fn in originals.items():
            setattr(module, name, fn)
        for name in ("read_traces", "save_result"):
            setattr(LocalStore, name, getattr(LocalStore, name).__wrapped__)
        timers.append(timer)
    peak = peak_rss_gib()
    if profile:
        cProfile.runctx("Evaluator(model, 'v1', store=store).request_evaluation()",
                        {"Evaluator": Evaluator, "model": model, "store": store}, {}, profile)  # fmt: skip
    summary = result.metrics_summary().iloc[0]
    per_class = result.tables["per_class"].set_index("name")
    ap_columns = [c for c in per_class.columns if c.startswith("ap_")]
    return {
        "wall": statistics.median(w for w, _ in runs), "cpu": statistics.median(c for _, c in runs),
        "runs": runs, "before": before, "peak": peak,
        "steps": {label: (statistics.median(t.wall[label] for t in timers), statistics.median(t.cpu[label] for t in timers))
                  for label in dict.fromkeys([*STEPS.values(), "read traces", "save result"])},
        "summary": {key: float(summary[key]) for key in SUMMARY},
        "per_class": {name: {**{c: float(row[c]) for c in ap_columns}, **{m: float(row[m]) for m in TP_NAMES}}
                      for name, row in per_class.iterrows()},
        "units": int(result.meta["rows"]), "objects": int(summary["objects"]), "frames": int(summary["counts"]),
    }  # fmt: skip


def child_devkit(store: LocalStore, model: str) -> dict:
    """The devkit's ``evaluate()`` on the boxes stored as ``model``: times, metrics, peak RSS."""
    from ml_debugger.tasks.detection3d.loading import load_detection3d_data
    from tests.tasks.detection3d.synthetic import devkit_evaluation

    before = peak_rss_gib()
    data = load_detection3d_data(store.read_traces(model, "v1", [0]))
    frames = data.groups[0].boxes
    started = time.perf_counter()
    evaluation = devkit_evaluation(frames, CLASS_NAMES)[0]
    loading = time.perf_counter() - started
    wall, cpu = time.perf_counter(), time.process_time()
    metrics, _ = evaluation.evaluate()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    summary = metrics.serialize()
    return {
        "wall": wall, "cpu": cpu, "loading": loading, "before": before, "peak": peak_rss_gib(),
        "summary": {key: float(summary[name] if name in summary else summary["tp_errors"][MEAN_OF[key]])
                    for key, name in SUMMARY.items()},
        "per_class": {name: {**{f"ap_{th}": float(metrics.get_label_ap(name, th)) for th in (0.5, 1.0, 2.0, 4.0)},
                             **{m: float(metrics.get_label_tp(name, m)) for m in TP_NAMES}}
                      for name in CLASS_NAMES.values()},
        "frames": frames.n_frames,
    }  # fmt: skip


def run_child(args: argparse.Namespace, side: str, model: str) -> dict:
    command = [sys.executable, __file__, "--child", side, "--store", args.store, "--model", model,
               "--repeats", str(args.repeats), *(["--profile", f"{args.profile}.{model}"] if args.profile else [])]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{side} on {model} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def differences(ours: dict, devkit: dict) -> dict[str, float]:
    """Largest absolute differences: summary values, per-class APs, per-class TP errors (NaN = NaN)."""

    def diff(a: float, b: float) -> float:
        return 0.0 if (np.isnan(a) and np.isnan(b)) else abs(a - b)

    classes = devkit["per_class"]
    return {
        "summary": max(diff(ours["summary"][k], devkit["summary"][k]) for k in SUMMARY),
        "AP": max(diff(ours["per_class"][n][k], v) for n in classes for k, v in classes[n].items() if k.startswith("ap_")),
        "TP errors": max(diff(ours["per_class"][n][m], classes[n][m]) for n in classes for m in TP_NAMES),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6019)
    parser.add_argument("--devkit-frames", type=int, default=600, help="frames the devkit evaluates (the first ones)")
    parser.add_argument("--gt", type=int, default=20, help="mean GTs per frame")
    parser.add_argument("--dt", type=int, default=500, help="detections per frame")
    parser.add_argument("--repeats", type=int, default=2, help="evaluations of ours per child (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-devkit", action="store_true")
    parser.add_argument("--profile", help="write a cProfile of one more evaluation of ours to FILE.<model>")
    parser.add_argument("--child", choices=("ours", "devkit"), help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        store = LocalStore(Path(args.store))
        report = child_ours(store, args.model, args.repeats, args.profile) if args.child == "ours" else child_devkit(store, args.model)
        print(json.dumps(report))
        return

    started = time.perf_counter()
    frames = as_stored(nuscenes_sized_set(args.seed, n_frames=args.frames, gt_per_frame=args.gt, dt_per_frame=args.dt))
    print(f"data: {frames.n_frames} frames, {frames.n_gt} GTs, {frames.n_dt} detections; generated in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    home = Path(tempfile.mkdtemp(prefix="bench-det3d-eval-"))
    args.store = str(home)
    store = LocalStore(home)
    part = min(args.devkit_frames, args.frames)
    started = time.perf_counter()
    record(store, frames, "det3d-full")
    if part < args.frames:
        record(store, head(frames, part), "det3d-part")
    print(f"recorded in {time.perf_counter() - started:.1f} s (not timed); store {sum(f.stat().st_size for f in home.rglob('*') if f.is_file()) / 2**20:.0f} MiB")
    del frames
    part_model = "det3d-part" if part < args.frames else "det3d-full"
    reports = {}
    order = [("ours", part_model)] if part_model != "det3d-full" else []
    order = ([] if args.no_devkit else [("devkit", part_model)]) + order + [("ours", "det3d-full")]
    for side, model in order:
        load = os.getloadavg()[0]
        reports[side, model] = report = run_child(args, side, model)
        extra = f", its loading {report['loading']:.1f} s not timed" if side == "devkit" else ""
        print(f"{side} on {report['frames']} frames: {report['wall']:.2f} s (CPU {report['cpu']:.2f}), "
              f"peak RSS {report['peak']:.2f} GiB; load {load:.2f}{extra}")  # fmt: skip

    print()
    print(f"{'side':<8} {'frames':>6} {'wall s':>8} {'CPU s':>8} {'ms/frame':>9} {'peak RSS GiB':>13}")
    for (side, _), r in reports.items():
        print(f"{side:<8} {r['frames']:>6} {r['wall']:>8.2f} {r['cpu']:>8.2f} {1000 * r['wall'] / r['frames']:>9.2f} {r['peak']:>13.2f}")
    full = reports["ours", "det3d-full"]
    if ("devkit", part_model) in reports:
        dev, mine = reports["devkit", part_model], reports["ours", part_model]
        print(f"\ndevkit / ours on the same {dev['frames']} frames: {dev['wall'] / mine['wall']:.1f}x wall, "
              f"{dev['cpu'] / mine['cpu']:.1f}x CPU")
        if part_model != "det3d-full":
            per_frame = (dev["wall"] / dev["frames"]) / (full["wall"] / full["frames"])
            per_frame_cpu = (dev["cpu"] / dev["frames"]) / (full["cpu"] / full["frames"])
            print(f"devkit per frame ({dev['frames']} frames) / ours per frame ({full['frames']} frames): "
                  f"{per_frame:.1f}x wall, {per_frame_cpu:.1f}x CPU")
        print("max |difference| ours - devkit:", {k: f"{v:.1e}" for k, v in differences(mine, dev).items()})
    for (side, model), r in reports.items():
        if side != "ours":
            continue
        print(f"\nsteps of ours on {r['frames']} frames (median wall s / CPU s)")
        for label, (wall, cpu) in r["steps"].items():
            print(f"  {label:<30} {wall:>7.2f} {cpu:>7.2f}")
        print(f"  {'other':<30} {r['wall'] - sum(w for w, _ in r['steps'].values()):>7.2f} "
              f"{r['cpu'] - sum(c for _, c in r['steps'].values()):>7.2f}")
    print("\nmetrics (full set):", {k: round(v, 4) for k, v in full["summary"].items()}, f"units {full['units']}")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
