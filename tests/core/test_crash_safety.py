"""A tracing process killed with SIGKILL mid-epoch leaves every flushed batch readable, no torn file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ml_debugger.core import TraceSession
from ml_debugger.store import LocalStore

CHILD = r"""
import os, sys
import numpy as np
from ml_debugger.core import TraceSession
from ml_debugger.tasks.classification import make_classification_batch
from ml_debugger.store import LocalStore

home, marker, run = sys.argv[1], sys.argv[2], int(sys.argv[3])
session = TraceSession("crashy", "v1", "classification", store=LocalStore(home),
                       rows_per_part=96, flush_interval=3600)
rng = np.random.default_rng(run)
batch_size = 32
for i in range(10**6):
    ids = np.arange(i * batch_size, (i + 1) * batch_size) + run * 10**8
    batch = make_classification_batch(
        rng.normal(size=(batch_size, 10)), rng.integers(0, 10, batch_size),
        input_hashes=np.array([f"{x:x}" for x in ids], dtype=object), input_ids=ids,
        features=rng.normal(size=(batch_size, 512)).astype(np.float32),
    )
    session.record(batch, dataset_type="val", n_epoch=0)
    if i % 5 == 4:
        session.flush()
        with open(marker, "a") as f:  # every id below this one is durable now
            f.write(f"{ids[-1] + 1}\n")
            f.flush()
            os.fsync(f.fileno())
"""


def flushed_upto(marker: Path) -> int:
    lines = marker.read_text().split() if marker.exists() else []
    return int(lines[-1]) if lines else 0


@pytest.mark.parametrize("run", [1, 2, 3])
def test_sigkill_mid_epoch_keeps_every_flushed_batch(tmp_path: Path, run: int) -> None:
    home, marker = tmp_path / "home", tmp_path / "flushed.txt"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(home), str(marker), str(run)])
    try:
        deadline = time.monotonic() + 60
        while flushed_upto(marker) < run * 10**8 + 3 * 160 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.05 * run)  # land the kill at a different moment of the write cycle each run
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    durable = flushed_upto(marker)
    assert durable > run * 10**8, "the child never flushed"

    parts = sorted((home / "traces").rglob("*.parquet"))
    assert parts, "no part file was written"
    ids: set[int] = set()
    for part in parts:  # every file under a final name is complete and readable
        table = pq.read_table(part)
        assert table.num_rows > 0
        ids.update(int(x) for x in table.column("input_id").to_pylist())
    expected = set(range(run * 10**8, durable))
    assert expected <= ids, f"{len(expected - ids)} flushed rows are missing"
    leftovers = [p.name for p in (home / "traces").rglob("*") if p.is_file() and p.suffix != ".parquet"]
    assert all(name.startswith(".") and name.endswith(".tmp") for name in leftovers), leftovers

    # The store is still usable after the crash.
    store = LocalStore(home)
    session = TraceSession("crashy", "v1", "classification", store=store)
    session.wait_for_save()
    assert store.committed_epochs("crashy", "v1") == []
