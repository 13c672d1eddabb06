"""Lightning callback overhead: the same validation loop with and without it, as a ratio in one run.

    python benchmarks/bench_lightning_callback.py [--batches 60] [--rounds 5]

A small CNN (two conv blocks + MLP head, 3x32x32 inputs, batch 64) on one CPU thread, validated
with ``trainer.validate``. The loop is timed from the first callback's ``on_validation_epoch_start`` to
the last callback's ``on_validation_epoch_end``, so the traced time includes attaching the hooks,
every batch's capture and the epoch's commit (``wait_for_save``), and neither includes Trainer
setup. Rounds alternate which trainer goes first; the overhead is the median of the per-round
ratios, in wall time and in process CPU time (all threads, the background writer included), which
other processes on a shared machine disturb far less. Also reported: the time spent inside the
callback's own hooks on the training thread, the most stable measure of what it adds.
Target (DESIGN.md 8): <= 3%.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ml_debugger.integrations.lightning import MLDebuggerCallback
from ml_debugger.store import LocalStore
from step_timer import time_methods  # beside this script


class SmallCNN(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)


class Stopwatch:
    """Two callbacks around the others: the first starts the clock, the last stops it."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        stopwatch = self

        class Start(pl.Callback):
            def on_validation_epoch_start(self, trainer, pl_module) -> None:
                stopwatch.started = (time.perf_counter(), time.process_time())

        class Stop(pl.Callback):
            def on_validation_epoch_end(self, trainer, pl_module) -> None:
                stopwatch.wall.append(time.perf_counter() - stopwatch.started[0])
                stopwatch.cpu.append(time.process_time() - stopwatch.started[1])

        self.start, self.stop = Start(), Stop()


HOOKS = ("on_validation_epoch_start", "on_validation_batch_start", "on_validation_batch_end", "on_validation_epoch_end")


def trainer(callbacks: list[pl.Callback]) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = SmallCNN()
    n = args.batches * args.batch_size
    loader = DataLoader(TensorDataset(torch.randn(n, 3, 32, 32), torch.randint(0, 10, (n,))), batch_size=args.batch_size)

    with tempfile.TemporaryDirectory() as home:
        plain, traced = Stopwatch(), Stopwatch()
        callback = MLDebuggerCallback("bench_cnn", "v1", store=LocalStore(home))
        in_hooks = time_methods(callback, HOOKS)
        runs = {
            "plain": lambda: trainer([plain.start, plain.stop]).validate(model, loader, verbose=False),
            "traced": lambda: trainer([traced.start, callback, traced.stop]).validate(model, loader, verbose=False),
        }
        runs["traced"]()  # warm-up: finds the logits module, starts the writer
        runs["plain"]()
        for stopwatch in (plain, traced):
            stopwatch.wall.clear()
            stopwatch.cpu.clear()
        in_hooks[0] = 0.0
        for r in range(args.rounds):
            for name in (("plain", "traced") if r % 2 == 0 else ("traced", "plain")):
                runs[name]()
    for clock in ("wall", "cpu"):
        ratios = [t / p for t, p in zip(getattr(traced, clock), getattr(plain, clock))]
        print(
            f"Lightning callback overhead ({clock} time), small CNN, batch {args.batch_size}, {args.batches} batches, "
            f"{args.rounds} rounds: median {(statistics.median(ratios) - 1) * 100:+.1f}% "
            f"(plain median {statistics.median(getattr(plain, clock)):.3f} s; rounds: "
            f"{', '.join(f'{(x - 1) * 100:+.1f}%' for x in ratios)}; target <= 3%)"
        )
    per_loop = in_hooks[0] / args.rounds
    print(
        f"time inside the callback's hooks: {per_loop * 1000:.1f} ms per validation loop = "
        f"{per_loop / statistics.median(plain.wall) * 100:.2f}% of the plain loop's median wall time"
    )

if __name__ == "__main__":
    main()
