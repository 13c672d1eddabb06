"""Tracer overhead on a validation loop: the same batches traced and untraced, as a ratio in one run.

    python benchmarks/bench_tracer_overhead.py [--batches 60] [--rounds 7] [--threads N]

A small CNN (two conv blocks + MLP head, 3x32x32 inputs, batch 64) on the CPU. Every batch is run
twice back to back, once as ``model(x)`` and once as ``tracer(x, y, ...)`` (alternating which goes
first), so slow phases of a noisy machine hit both alike; the epoch's ``wait_for_save`` is added
to the traced side. Overhead = traced time / untraced time - 1, per round; the median over rounds
is reported, for wall time and for the process's CPU time (all threads). Target (DESIGN.md 8):
<= 3%.
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


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = small_cnn()
    data = [(torch.randn(args.batch_size, 3, 32, 32), torch.randint(0, 10, (args.batch_size,)))
            for _ in range(args.batches)]

    with tempfile.TemporaryDirectory() as home, torch.no_grad():
        tracer = ClassificationTracer(model, "bench_cnn", "v1", store=LocalStore(home))
        tracer(data[0][0], data[0][1], dataset_type="val", n_epoch=0)  # warm-up: finds the feature layer
        tracer.wait_for_save(0)
        wall, cpu = [], []
        for epoch in range(1, args.rounds + 1):
            plain, traced = [0.0, 0.0], [0.0, 0.0]
            for i, (x, y) in enumerate(data):
                ids = torch.arange(i * len(x), (i + 1) * len(x))
                order = ("traced", "plain") if (i + epoch) % 2 == 0 else ("plain", "traced")
                for which in order:
                    start = clock()
                    if which == "plain":
                        model(x)
                    else:
                        tracer(x, y, input_ids=ids, dataset_type="val", n_epoch=epoch)
                    end = clock()
                    side = traced if which == "traced" else plain
                    side[0] += end[0] - start[0]
                    side[1] += end[1] - start[1]
            start = clock()
            tracer.wait_for_save(epoch)
            end = clock()
            traced[0] += end[0] - start[0]
            traced[1] += end[1] - start[1]
            wall.append(traced[0] / plain[0])
            cpu.append(traced[1] / plain[1])
        tracer.close()
    threads = torch.get_num_threads()
    for name, ratios in (("wall", wall), ("cpu", cpu)):
        overhead = (statistics.median(ratios) - 1) * 100
        print(f"tracer overhead ({name} time), small CNN, batch {args.batch_size}, {args.batches} batches, "
              f"{threads} torch threads, {args.rounds} rounds: median {overhead:+.1f}% "
              f"(rounds: {', '.join(f'{(x - 1) * 100:+.1f}%' for x in ratios)}; target <= 3%)")


if __name__ == "__main__":
    main()
