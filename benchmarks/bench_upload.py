"""Upload load: several tracing clients send their parts to one server at the same time.

    python benchmarks/bench_upload.py [--clients 4] [--rows 16384] [--dim 512] [--rows-per-part 4096]

Starts ``mldebugger server`` on 127.0.0.1 (embedded store in a temporary directory), then runs
``--clients`` processes that each trace ``--rows`` classification rows (``--dim``-d float32
features) through a ``TraceSession`` on a ``RemoteStore`` and call ``wait_for_save``. Reports the
upload throughput (MB of part files per second of wall time, from the first record to the last
commit), the p50/p95/max latency of the part uploads and commits as the clients saw them, and
checks that the server holds every row exactly once.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np


class TimingTransport(httpx.HTTPTransport):
    """Records how long each write request takes until its response arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.latencies: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        response = super().handle_request(request)
        if request.method in ("PUT", "POST"):
            self.latencies.append(time.perf_counter() - started)
        return response


def client(index: int, url: str, key: str, home: str, rows: int, dim: int, rows_per_part: int,
           start: mp.Event, results: mp.Queue) -> None:
    from ml_debugger.core import TraceSession
    from ml_debugger.tasks.classification import make_classification_batch
    from ml_debugger.store.remote import RemoteStore

    rng = np.random.default_rng(index)
    batches = []
    for first in range(0, rows, 256):
        ids = np.arange(first, min(first + 256, rows))
        batches.append(make_classification_batch(
            rng.normal(size=(len(ids), 10)).astype(np.float32), rng.integers(0, 10, len(ids)),
            input_hashes=np.array([f"{index}-{i}" for i in ids], dtype=object), input_ids=ids,
            features=rng.normal(size=(len(ids), dim)).astype(np.float32),
        ))
    transport = TimingTransport()
    store = RemoteStore(url, key, home=Path(home) / f"client-{index}", transport=transport, upload_timeout=600)
    session = TraceSession(f"bench-{index}", "v1", "classification", store=store, rows_per_part=rows_per_part)
    start.wait()
    began = time.perf_counter()
    for batch in batches:
        session.record(batch, dataset_type="val", n_epoch=0)
    session.wait_for_save(0)
    ended = time.perf_counter()
    spooled = list((Path(home) / f"client-{index}").rglob("*.parquet"))
    results.put((index, began, ended, transport.latencies, len(spooled)))
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rows", type=int, default=16384, help="rows traced by each client")
    parser.add_argument("--dim", type=int, default=512, help="feature dimension")
    parser.add_argument("--rows-per-part", type=int, default=4096)
    args = parser.parse_args()

    from ml_debugger.server.keys import KeyRing
    from ml_debugger.store import LocalStore

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "server"
        server_store = LocalStore(home)
        key = KeyRing(server_store.catalog).create("bench")[1]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "ml_debugger.cli", "server", "--home", str(home),
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(url)
            ctx = mp.get_context("spawn")
            start, results = ctx.Event(), ctx.Queue()
            procs = [ctx.Process(target=client, args=(i, url, key, tmp, args.rows, args.dim, args.rows_per_part,
                                                      start, results)) for i in range(args.clients)]
            for p in procs:
                p.start()
            time.sleep(2.0)  # let every client build its batches before the clock starts
            start.set()
            reports = [results.get(timeout=1800) for _ in procs]
            for p in procs:
                p.join()
        finally:
            server.terminate()
            server.wait(timeout=30)

        wall = max(r[2] for r in reports) - min(r[1] for r in reports)
        part_bytes = sum(p.stat().st_size for p in (home / "traces").rglob("*.parquet"))
        latencies = np.array([x for r in reports for x in r[3]])
        lost = []
        for i in range(args.clients):
            table = server_store.read_traces(f"bench-{i}", "v1", None)
            ids = sorted(int(x) for x in table.column("input_id").to_pylist())
            if ids != list(range(args.rows)):
                lost.append(f"bench-{i}: {len(ids)} rows, {len(set(ids))} distinct, {args.rows} traced")
        left = sum(r[4] for r in reports)
        print(f"{args.clients} clients x {args.rows} rows ({args.dim}-d features), {args.rows_per_part} rows per part")
        print(f"uploaded {part_bytes / 1e6:.1f} MB in {wall:.2f} s: {part_bytes / 1e6 / wall:.1f} MB/s, "
              f"{args.clients * args.rows / wall:,.0f} rows/s")
        print(f"write requests: {len(latencies)}, latency p50 {np.percentile(latencies, 50) * 1e3:.0f} ms, "
              f"p95 {np.percentile(latencies, 95) * 1e3:.0f} ms, max {latencies.max() * 1e3:.0f} ms")
        print("no loss: every row on the server exactly once" if not lost and not left else
              f"LOSS: {lost}; {left} parts left in spools")
        if lost or left:
            sys.exit(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"the server at {url} did not start within {timeout} s")


if __name__ == "__main__":
    main()
