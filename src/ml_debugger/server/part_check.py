"""Checking an uploaded part before it is stored: footer first, then values one row group at a time.

A Parquet body is refused from its footer, before any value is decoded, when its schema is not the
task's (422), when its columns differ from the version's committed parts (422), when it has too many
rows (413) or would decode to too many bytes (413): the estimate counts each column's values times
their width, and the exact length of dictionary-encoded strings (read from the dictionary and its
indices, which is how a small file decodes to gigabytes). Only then are the row groups decoded, one
at a time, and their values checked against the task's schema and the upload's URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml_debugger.exceptions import TraceValidationError
from ml_debugger.server.bodies import too_large
from ml_debugger.server.errors import ApiProblem
from ml_debugger.store.partfiles import ColumnTypes, column_types, type_difference
from ml_debugger.tasks import TraceSchema

MAX_FOOTER_BYTES = 16 * 2**20
_VALUE_BYTES = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12}
_OFFSET_BYTES = 4  # per value: offsets of strings and lists


@dataclass(frozen=True)
class PartLimits:
    """How large a part may be once decoded."""

    max_rows: int
    max_decoded_bytes: int


@dataclass(frozen=True)
class ExpectedPart:
    """What an uploaded part must be.

    Attributes:
        schema: the task's trace schema.
        values: columns whose every value is known from the URL (model, version, dataset, epoch, run, rank).
        rows: the row count the client declared, if any.
        version_columns: the column types of the version's committed parts (None before its first commit).
        version: ``model/version``, for messages.
    """

    schema: TraceSchema
    values: dict[str, object]
    rows: int | None
    version_columns: ColumnTypes | None
    version: str


def corrupt(exc: Exception) -> ApiProblem:
    return ApiProblem(400, "RemoteError", f"the part file is truncated or corrupt: {exc}")


def check_schema(schema: pa.Schema, expected: ExpectedPart) -> None:
    """The task's column types, and the version's (TraceValidationError naming the column)."""
    expected.schema.check_types(schema)
    if expected.version_columns is not None:
        problem = type_difference(
            column_types(schema), expected.version_columns, f"the parts committed to {expected.version}"
        )
        if problem is not None:
            raise TraceValidationError(problem)


def check_rows(rows: int, expected: ExpectedPart, limits: PartLimits) -> None:
    if expected.rows is not None and rows != expected.rows:
        raise TraceValidationError(f"the part has {rows} rows; the client sent rows={expected.rows}")
    if rows == 0:
        raise TraceValidationError("the part has no rows")
    if rows > limits.max_rows:
        raise too_large("the part", str(rows), limits.max_rows, "rows")


def check_decoded_size(size: int, limits: PartLimits) -> None:
    if size > limits.max_decoded_bytes:
        raise too_large("the part decoded", f"about {size}", limits.max_decoded_bytes)


def check_table(table: pa.Table, expected: ExpectedPart) -> None:
    """The values of (a row group of) a part: the task's checks, and the columns the URL fixes."""
    expected.schema.check_values(table)
    for column, value in expected.values.items():
        data = table.column(column)
        if not pc.all(pc.equal(data, pa.scalar(value, data.type))).as_py():
            found = pc.unique(data).to_pylist()[:5]
            raise TraceValidationError(f"column {column!r} holds {found}, but the part was sent for {column}={value!r}")


def dictionary_expansion(arrays: Iterable[pa.Array]) -> int:
    """Bytes that the dictionary-encoded strings in ``arrays`` (at any list depth) take once decoded."""
    total = 0
    for array in arrays:
        while pa.types.is_list(array.type) or pa.types.is_large_list(array.type) \
                or pa.types.is_fixed_size_list(array.type):
            array = array.flatten()
        if pa.types.is_dictionary(array.type) and len(array):
            lengths = pc.binary_length(array.dictionary)
            total += int(pc.sum(pc.take(lengths, array.indices)).as_py() or 0)
    return total


def _check_footer_length(path: Path) -> None:
    """400 unless the file ends with a footer that fits in it; 413 for a footer over MAX_FOOTER_BYTES."""
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - 8))
        tail = f.read(8)
    length = int.from_bytes(tail[:4], "little")
    if size < 12 or tail[4:] != b"PAR1" or length > size - 12:
        raise corrupt(ValueError("the file does not end with a Parquet footer"))
    if length > MAX_FOOTER_BYTES:
        raise too_large("the Parquet footer", str(length), MAX_FOOTER_BYTES)


def _estimate_without_dictionaries(parquet: pq.ParquetFile) -> tuple[int, set[str]]:
    """Bytes the part decodes to, from its footer alone (values times their width, plus list offsets),
    leaving out the strings of dictionary-encoded columns; and the top-level columns that have such strings."""
    metadata = parquet.metadata
    total, dictionary_columns = 0, set()
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            values = chunk.num_values
            total += values // 8 + 1  # validity bitmap
            if parquet.schema.column(index).max_repetition_level > 0:
                total += _OFFSET_BYTES * values  # list offsets (at most one per value)
            if chunk.physical_type == "BYTE_ARRAY":
                total += _OFFSET_BYTES * values
                if chunk.has_dictionary_page:
                    dictionary_columns.add(chunk.path_in_schema.split(".")[0])
                else:  # plain strings decode to at most their encoded size
                    total += chunk.total_uncompressed_size
            elif chunk.physical_type == "FIXED_LEN_BYTE_ARRAY":
                total += values * parquet.schema.column(index).length
            else:
                total += values * _VALUE_BYTES.get(chunk.physical_type, 8)
    return total, dictionary_columns


def _dictionary_strings(path: Path, parquet: pq.ParquetFile, columns: set[str]) -> int:
    """Bytes of the dictionary-encoded strings of ``columns`` once decoded (reads dictionaries and indices only)."""
    leaves = [
        parquet.schema.column(i).path for i in range(len(parquet.schema))
        if parquet.schema.column(i).path.split(".")[0] in columns
    ]
    encoded = pq.ParquetFile(path, read_dictionary=leaves)
    total = 0
    for group in range(encoded.num_row_groups):
        table = encoded.read_row_group(group, columns=sorted(columns))
        total += dictionary_expansion(chunk for column in table.columns for chunk in column.chunks)
    return total


def check_parquet(path: Path, expected: ExpectedPart, limits: PartLimits) -> None:
    """Check a Parquet part: its footer, then its values one row group at a time (see the module doc)."""
    try:
        _check_footer_length(path)
        parquet = pq.ParquetFile(path)
        metadata = parquet.metadata
        schema = parquet.schema_arrow
    except (OSError, pa.ArrowException) as exc:
        raise corrupt(exc) from exc
    check_schema(schema, expected)
    if sum(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)) != metadata.num_rows:
        raise corrupt(ValueError("the row groups' row counts do not add up to the file's"))
    check_rows(metadata.num_rows, expected, limits)
    estimate, dictionary_columns = _estimate_without_dictionaries(parquet)
    check_decoded_size(estimate, limits)
    try:
        if dictionary_columns:
            estimate += _dictionary_strings(path, parquet, dictionary_columns)
            check_decoded_size(estimate, limits)
        for group in range(metadata.num_row_groups):
            table = parquet.read_row_group(group)
            if table.num_rows != metadata.row_group(group).num_rows:
                raise corrupt(ValueError(f"row group {group} holds {table.num_rows} rows, not as its footer says"))
            check_table(table, expected)
    except (OSError, pa.ArrowException) as exc:
        raise corrupt(exc) from exc
