"""Writer throughput: classification rows per second with 512-d features, record to commit.

    python benchmarks/bench_writer.py [--rows 300000] [--batch 256]

Times ``TraceSession.record`` of pre-built batches plus the final ``wait_for_save`` (so every row
is on disk and committed), on a temporary embedded store. Target (DESIGN.md 8): >= 50k rows/s on
one core. Rows per CPU-second (all threads of the process) is printed too: it tells what one core
sustains even when other processes share the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from ml_debugger.core import TraceSession

from ml_debugger.tasks.classification import make_classification_batch
from ml_debugger.store import LocalStore


def run(rows: int, batch: int, dim: int, classes: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    batches = []
    for start in range(0, rows, batch):
        ids = np.arange(start, min(start + batch, rows))
        batches.append(dict(
            scores=rng.normal(size=(len(ids), classes)).astype(np.float32),
            labels=rng.integers(0, classes, len(ids)),
            input_hashes=np.array([f"{i:032x}" for i in ids], dtype=object),
            input_ids=ids,
            features=rng.normal(size=(len(ids), dim)).astype(np.float32),
        ))
    with tempfile.TemporaryDirectory() as home:
        session = TraceSession("bench", "v1", "classification", store=LocalStore(home))
        started, cpu_started = time.perf_counter(), time.process_time()
        for b in batches:
            session.record(
                make_classification_batch(b["scores"], b["labels"], input_hashes=b["input_hashes"],
                                          input_ids=b["input_ids"], features=b["features"]),
                dataset_type="val", n_epoch=0,
            )
        session.wait_for_save(0)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        session.close()
    return rows / elapsed, rows / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    rate, per_cpu_second = run(args.rows, args.batch, args.dim, args.classes)
    print(f"writer: {args.rows} rows x {args.dim}-d features in batches of {args.batch}: {rate:,.0f} rows/s wall, "
          f"{per_cpu_second:,.0f} rows per CPU-second (target >= 50,000 rows/s on one core)")


if __name__ == "__main__":
    main()
