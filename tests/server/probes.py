"""Measuring a server process from outside: memory (from /proc/<pid>/status) and open file descriptors."""

from __future__ import annotations

import io
import os

import pyarrow as pa
import pyarrow.parquet as pq


def status_mb(pid: int, field: str) -> float:
    """A ``kB`` field of /proc/<pid>/status (``VmRSS``, ``VmHWM``: the peak resident size) in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def parquet_bytes(table: pa.Table, **options) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()
