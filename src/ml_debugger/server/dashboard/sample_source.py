"""A result's per-unit table as the sample views read it: a Parquet file whose columns are read on
demand and, while the file is small, kept in memory so that paging does not re-read it."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CACHE_BYTES = 64 * 2**20
"""A samples table larger than this (uncompressed, binary columns left out) is read per request."""


def is_binary(type_: pa.DataType) -> bool:
    return pa.types.is_binary(type_) or pa.types.is_large_binary(type_)


class SampleSource:
    """The samples table at ``path``: its schema, and any of its non-binary columns."""

    def __init__(self, path: Path, max_bytes: int = CACHE_BYTES) -> None:
        self.path = path
        parquet = pq.ParquetFile(path)
        self.schema: pa.Schema = parquet.schema_arrow
        self.num_rows: int = parquet.metadata.num_rows
        self._readable = [f.name for f in self.schema if not is_binary(f.type)]
        self.cached = _uncompressed_bytes(parquet.metadata, set(self._readable)) <= max_bytes
        self._table: pa.Table | None = None
        self._lock = threading.Lock()

    @property
    def columns(self) -> list[str]:
        """Every column but the binary ones."""
        return list(self._readable)

    def read(self, columns: list[str]) -> pa.Table:
        """The named columns of every row (binary columns are never kept in memory)."""
        if not self.cached or any(c not in self._readable for c in columns):
            return pq.read_table(self.path, columns=columns)
        with self._lock:
            if self._table is None:
                self._table = pq.read_table(self.path, columns=self._readable)
        return self._table.select(columns)


def _uncompressed_bytes(metadata: pq.FileMetaData, columns: set[str]) -> int:
    total = 0
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            if chunk.path_in_schema.split(".")[0] in columns:
                total += chunk.total_uncompressed_size
    return total
