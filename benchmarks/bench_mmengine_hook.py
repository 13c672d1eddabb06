"""MLDebuggerHook overhead: MMDetection3D's PointPillars validation loop with and without the
hook, as a ratio in one run.

    python benchmarks/bench_mmengine_hook.py [--size shipped|tiny] [--frames 12] [--points 20000] [--rounds 5]

Two MMEngine Runners share one randomly initialised PointPillars (``--size shipped``: the model of
MMDetection3D's own ``pointpillars_hv_secfpn_8xb6-160e_kitti-3d-car.py``, 69 m x 79 m, 432 x 496
pillars; ``tiny``: integrations/mmdet3d/pointpillars_tiny_kitti.py) and validate the same generated
KITTI-like frames (``--points`` LiDAR points each, a few cars), on the CPU with one torch thread.
One Runner has the hook in its ``custom_hooks``. Each loop is timed from ``before_val_epoch`` (a
hook of the highest priority) to ``after_val_epoch`` (the lowest), so the traced time includes
every frame's conversion, points-in-box counts and BEV feature sampling and the epoch's commit;
the KITTI metric only formats its results (its AP needs CUDA) in both. Rounds alternate which
Runner goes first; the overhead is the median of the per-round ratios in wall time and in process
CPU time (all threads, the background writer included). Also reported: the time spent inside
the hook's own methods on the loop's thread. Target (DESIGN.md 8): <= 3%.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.hub import get_config
from mmengine.runner import Runner

from ml_debugger.integrations.mmengine import MLDebuggerHook
from step_timer import time_methods  # beside this script
from ml_debugger.store import LocalStore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "integrations" / "mmdet3d"))
from kitti_like import write_kitti_like  # noqa: E402

TINY = ROOT / "integrations" / "mmdet3d" / "pointpillars_tiny_kitti.py"
SHIPPED = "mmdet3d::pointpillars/pointpillars_hv_secfpn_8xb6-160e_kitti-3d-car.py"
TRACED = ("before_val_epoch", "before_val_iter", "after_val_iter", "after_val_epoch")


class Stopwatch:
    """Two hooks around the others: the first starts the clock, the last stops it."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        stopwatch = self

        class Start(Hook):
            priority = "HIGHEST"

            def before_val_epoch(self, runner) -> None:
                stopwatch.started = (time.perf_counter(), time.process_time())

        class Stop(Hook):
            priority = "LOWEST"

            def after_val_epoch(self, runner, metrics=None) -> None:
                stopwatch.wall.append(time.perf_counter() - stopwatch.started[0])
                stopwatch.cpu.append(time.process_time() - stopwatch.started[1])

        self.hooks = [Start(), Stop()]

    def clear(self) -> None:
        self.wall.clear()
        self.cpu.clear()


def config(size: str, work_dir: Path) -> Config:
    cfg = Config.fromfile(TINY)  # the data settings (KITTI layout under $MLD_KITTI_ROOT, CPU metric)
    if size == "shipped":
        shipped = get_config(SHIPPED)
        cfg.model = shipped.model
        cfg.val_dataloader.dataset.pipeline = shipped.val_dataloader.dataset.pipeline
    cfg.custom_hooks = []
    cfg.work_dir = str(work_dir)
    cfg.log_level = "WARNING"
    cfg.default_hooks.logger = None
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("shipped", "tiny"), default="shipped")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--points", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("mmengine").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_kitti_like(tmp / "kitti", 0, args.frames, ground_points=args.points - 500)
        os.environ["MLD_KITTI_ROOT"] = f"{tmp / 'kitti'}/"
        hook = MLDebuggerHook("bench_pointpillars", "v1", store=LocalStore(tmp / "mld"))
        in_hook = time_methods(hook, TRACED)
        plain, traced = Stopwatch(), Stopwatch()
        plain_runner = Runner.from_cfg(config(args.size, tmp / "plain"))
        plain_runner.register_custom_hooks(plain.hooks)
        traced_runner = Runner.from_cfg(config(args.size, tmp / "traced"))
        traced_runner.register_custom_hooks([plain_hook for plain_hook in traced.hooks] + [hook])
        traced_runner.model.load_state_dict(plain_runner.model.state_dict())
        runs = {"plain": plain_runner.val, "traced": traced_runner.val}
        runs["traced"]()  # warm-up: opens the session, starts the writer
        runs["plain"]()
        plain.clear()
        traced.clear()
        in_hook[0] = 0.0
        for r in range(args.rounds):
            for name in (("plain", "traced") if r % 2 == 0 else ("traced", "plain")):
                runs[name]()
        hook.after_run(traced_runner)
    for clock in ("wall", "cpu"):
        ratios = [t / p for t, p in zip(getattr(traced, clock), getattr(plain, clock))]
        print(
            f"MLDebuggerHook overhead ({clock} time), {args.size} PointPillars, {args.frames} frames of "
            f"{args.points} points, {args.rounds} rounds: median {(statistics.median(ratios) - 1) * 100:+.1f}% "
            f"(plain median {statistics.median(getattr(plain, clock)):.2f} s; rounds: "
            f"{', '.join(f'{(x - 1) * 100:+.1f}%' for x in ratios)}; target <= 3%)"
        )
    per_loop = in_hook[0] / args.rounds
    print(
        f"time inside the hook's methods: {per_loop * 1000:.0f} ms per validation loop "
        f"({per_loop / args.frames * 1000:.1f} ms per frame) = "
        f"{per_loop / statistics.median(plain.wall) * 100:.2f}% of the plain loop's median wall time"
    )


if __name__ == "__main__":
    main()
