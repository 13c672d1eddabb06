"""Ultralytics callback overhead: YOLOv8n validation with and without it, as a ratio in one run.

    python benchmarks/bench_ultralytics_callback.py [--images 64] [--imgsz 320] [--rounds 5] [--no-features]

A YOLOv8n built from its yaml validated with ``model.val()`` on generated shape images (the
``yolo_shapes.py`` dataset, ``--imgsz`` square), batch 16, on the CPU, offline. Two YOLO objects,
one with ``add_mldebugger_callbacks`` (features on, the default), validate alternately; the loop is
timed from the first ``on_val_start`` callback to the last ``on_val_end`` one, so the traced time
includes wrapping the validator, every batch's capture and the commit, and neither includes building
the dataloader. Reported: the median per-round ratio traced / plain - 1 in wall and process CPU
time, and the callbacks' own work on the validation thread (recording and committing) over the
plain loop's time, the steadiest measure on a shared machine. Target: <= 3%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integrations" / "ultralytics"))
import yolo_shapes  # noqa: E402  (the example's dataset generator and offline settings)


class Stopwatch:
    """The first ``on_val_start`` and the last ``on_val_end`` callback of a YOLO object."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._started = (0.0, 0.0)

    def start(self, validator: Any) -> None:
        self._started = (time.perf_counter(), time.process_time())

    def stop(self, validator: Any) -> None:
        self.wall.append(time.perf_counter() - self._started[0])
        self.cpu.append(time.process_time() - self._started[1])


def own_work(callbacks: Any) -> list[float]:
    """Time the callbacks' recording and committing on the validation thread."""
    spent = [0.0]

    def timed(method):
        def call(*args):
            started = time.perf_counter()
            try:
                return method(*args)
            finally:
                spent[0] += time.perf_counter() - started
        return call

    callbacks._record = timed(callbacks._record)
    callbacks._finish = timed(callbacks._finish)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-features", action="store_true", help="record_features=False")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ultralytics-"))
    yolo_shapes.offline_ultralytics(work / "config")
    import torch
    from ultralytics import YOLO

    from ml_debugger.integrations.ultralytics import add_mldebugger_callbacks
    from ml_debugger.store import LocalStore

    data = yolo_shapes.make_dataset(work / "data", n_train=1, n_val=args.images, size=args.imgsz)
    torch.manual_seed(0)
    plain, traced = YOLO("yolov8n.yaml"), YOLO("yolov8n.yaml")
    traced.model.load_state_dict(plain.model.state_dict())
    watches = {"plain": Stopwatch(), "traced": Stopwatch()}
    for name, model in (("plain", plain), ("traced", traced)):
        model.add_callback("on_val_start", watches[name].start)
        if name == "traced":
            callbacks = add_mldebugger_callbacks(
                model, "bench-yolo", "v1", store=LocalStore(work / "mld"), record_features=not args.no_features
            )
            spent = own_work(callbacks)
        model.add_callback("on_val_end", watches[name].stop)
    settings = {"data": str(data), "imgsz": args.imgsz, "batch": 16, "device": "cpu", "plots": False,
                "verbose": False, "project": str(work / "runs"), "exist_ok": True}
    for model in (plain, traced):  # warm-up: caches, first allocations
        model.val(**settings)
    spent[0] = 0.0
    for name in watches:
        watches[name].wall.clear()
        watches[name].cpu.clear()
    for i in range(args.rounds):
        for model in (plain, traced) if i % 2 == 0 else (traced, plain):
            model.val(**settings)
    wall = [t / p - 1 for t, p in zip(watches["traced"].wall, watches["plain"].wall)]
    cpu = [t / p - 1 for t, p in zip(watches["traced"].cpu, watches["plain"].cpu)]
    plain_total = sum(watches["plain"].wall)
    rows = callbacks.session.store.read_traces("bench-yolo", "v1", None).num_rows
    print(f"YOLOv8n, {args.images} images at {args.imgsz} px, batch 16, {args.rounds} rounds, "
          f"features {'off' if args.no_features else 'on'}, "
          f"{torch.get_num_threads()} torch threads; {rows} rows traced")
    print(f"plain loop: median {statistics.median(watches['plain'].wall):.2f} s")
    print(f"end-to-end overhead: wall {statistics.median(wall):+.1%}, CPU {statistics.median(cpu):+.1%}")
    print(f"callbacks' own work: {spent[0] / plain_total:.1%} of the plain loop")


if __name__ == "__main__":
    main()
