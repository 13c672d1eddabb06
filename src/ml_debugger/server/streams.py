"""Tables sent as Arrow IPC streams one piece at a time, so a response never holds a whole version in memory."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

ARROW_STREAM = "application/vnd.apache.arrow.stream"


def ipc_stream(schema: pa.Schema, tables: Iterable[pa.Table]) -> Iterator[bytes]:
    """The bytes of an Arrow IPC stream of ``tables`` (each of ``schema``), yielded as each table is written."""
    sink = io.BytesIO()

    def drain() -> bytes:
        data = sink.getvalue()
        sink.seek(0)
        sink.truncate()
        return data

    with ipc.new_stream(sink, schema) as writer:
        yield drain()
        for table in tables:
            writer.write_table(table)
            yield drain()
    yield drain()


def parquet_row_groups(path: Path) -> tuple[pa.Schema, Iterator[pa.Table]]:
    """The schema of a Parquet file and its row groups, read one at a time."""
    parquet = pq.ParquetFile(path)
    return parquet.schema_arrow, (parquet.read_row_group(i) for i in range(parquet.num_row_groups))
