"""Per-unit signals at scale: ``compute_signals`` on 100k units with 512-d features.

    python benchmarks/bench_signals.py [--units 100000] [--dim 512] [--classes 10]

One epoch, 20% "train" / 80% "val". Features are a class mixture living near a 32-d subspace plus
isotropic noise; probabilities are a softmax of a noisy read-out of the latent class position
(about 80% accurate). Reports wall time, CPU time and peak resident memory of the process (the
generated inputs alone take about 1 GiB). Target (issue 3 item 8): well under 45 s and 3 GB on
2 cores, so that the whole evaluation stays under 60 s and 4 GB. On a machine whose cores are
busy with other work, the wall time says little; the CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import resource
import time

from bench_evaluation import make_data  # the same generated data as the whole-evaluation benchmark

from ml_debugger.evaluator.analysis.signals import compute_signals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    data, _ = make_data(args.units, args.dim, args.classes)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    before = usage.ru_maxrss / 2**20
    cpu_before = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    signals = compute_signals(data, progress=True)
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss / 2**20
    cpu = usage.ru_utime + usage.ru_stime - cpu_before
    accuracy = signals.table["correct"].mean()
    print(f"compute_signals: {args.units} units x {args.dim} features, {args.classes} classes "
          f"(accuracy {accuracy:.3f}): {elapsed:.1f} s wall, {cpu:.1f} s CPU, "
          f"peak RSS {peak:.2f} GiB (inputs built: {before:.2f} GiB)")


if __name__ == "__main__":
    main()
