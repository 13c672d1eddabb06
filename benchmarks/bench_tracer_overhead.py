"""Tracer overhead on a validation loop: the same loop traced and untraced, as a ratio in one run.

    python benchmarks/bench_tracer_overhead.py [--batches 60] [--rounds 5]

A small CNN (two conv blocks + MLP head, 3x32x32 inputs, batch 64) on the CPU. Each round runs
the untraced loop (``model(x)``) and the traced loop (``tracer(x, y, ...)`` plus the epoch's
``wait_for_save``) back to back, alternating which goes first; the reported overhead is the median
of the per-round ratios. Target (DESIGN.md 8): <= 3%.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch import nn

from ml_debugger.store import LocalStore
from ml_debugger.training import ClassificationTracer


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10),
    ).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = small_cnn()
    data = [(torch.randn(args.batch_size, 3, 32, 32), torch.randint(0, 10, (args.batch_size,)))
            for _ in range(args.batches)]

    with tempfile.TemporaryDirectory() as home:
        tracer = ClassificationTracer(model, "bench_cnn", "v1", store=LocalStore(home))

        def untraced() -> float:
            started = time.perf_counter()
            with torch.no_grad():
                for x, _ in data:
                    model(x)
            return time.perf_counter() - started

        def traced(epoch: int) -> float:
            started = time.perf_counter()
            with torch.no_grad():
                for i, (x, y) in enumerate(data):
                    tracer(x, y, input_ids=torch.arange(i * len(x), (i + 1) * len(x)),
                           dataset_type="val", n_epoch=epoch)
            tracer.wait_for_save(epoch)
            return time.perf_counter() - started

        traced(0)  # warm-up: finds the feature layer, starts the writer
        untraced()
        ratios = []
        for r in range(1, args.rounds + 1):
            if r % 2:
                base, with_tracer = untraced(), traced(r)
            else:
                with_tracer, base = traced(r), untraced()
            ratios.append(with_tracer / base)
        tracer.close()
    overhead = (statistics.median(ratios) - 1) * 100
    print(f"tracer overhead, small CNN, batch {args.batch_size}, {args.batches} batches, {args.rounds} rounds: "
          f"median {overhead:+.1f}% (rounds: {', '.join(f'{(x - 1) * 100:+.1f}%' for x in ratios)}; target <= 3%)")


if __name__ == "__main__":
    main()
