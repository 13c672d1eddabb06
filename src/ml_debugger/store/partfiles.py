"""Facts about stored Parquet part files, read from their footers: column types, identity, canonical form.

Every part of a model version must have the same columns with the same types, or the version could
not be read as one table. Types are compared in their canonical form (a dictionary-encoded or large
string is a string, list item names do not matter), which is also the form ``read_traces`` returns.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ml_debugger.exceptions import StoreError, TraceValidationError

ColumnTypes = dict[str, str]
"""A part's columns and their canonical types as text, e.g. ``{"label": "int64", ...}``."""


def canonical_type(data_type: pa.DataType) -> pa.DataType:
    """``data_type`` as traces are read back: dictionaries decoded, large types narrowed, list items unnamed."""
    if pa.types.is_dictionary(data_type):
        return canonical_type(data_type.value_type)
    if pa.types.is_large_string(data_type):
        return pa.string()
    if pa.types.is_large_binary(data_type):
        return pa.binary()
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return pa.list_(canonical_type(data_type.value_type))
    if pa.types.is_fixed_size_list(data_type):
        return pa.list_(canonical_type(data_type.value_type), data_type.list_size)
    return data_type


def canonical_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with canonical types, every field nullable and no metadata."""
    return pa.schema([pa.field(f.name, canonical_type(f.type)) for f in schema])


def column_types(schema: pa.Schema) -> ColumnTypes:
    return {f.name: str(canonical_type(f.type)) for f in schema}


def canonical_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` cast to ``schema`` (a canonical schema with the same column names)."""
    table = table.select(schema.names)
    return table if table.schema.equals(schema) else table.cast(schema)


def type_difference(found: ColumnTypes, expected: ColumnTypes, where: str) -> str | None:
    """Why a part with columns ``found`` cannot join parts with ``expected`` (``where`` names them); None if it can."""
    for name, found_type in found.items():
        if name not in expected:
            return f"column {name!r} ({found_type}) is not in {where}"
        if found_type != expected[name]:
            return f"column {name!r} is {found_type} in this part but {expected[name]} in {where}"
    for name, expected_type in expected.items():
        if name not in found:
            return f"column {name!r} ({expected_type}) is in {where} but not in this part"
    return None


def footer_schema(path: Path) -> pa.Schema:
    """The Arrow schema of a stored Parquet file, from its footer; StoreError if it is unreadable."""
    try:
        return pq.ParquetFile(path).schema_arrow
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot read the stored part {path}: {exc}") from exc


def common_column_types(paths: list[Path], where: str) -> ColumnTypes | None:
    """The column types all ``paths`` share; TraceValidationError naming the first part that differs."""
    common: ColumnTypes | None = None
    for path in paths:
        types = column_types(footer_schema(path))
        if common is None:
            common = types
            continue
        problem = type_difference(types, common, where)
        if problem is not None:
            raise TraceValidationError(f"part {path.name}: {problem}")
    return common


def part_identity(path: Path) -> tuple[int, str, int]:
    """``(rows, run_id, rank)`` of a stored part (the upload checked that every row has the same run and rank)."""
    try:
        parquet = pq.ParquetFile(path)
        rows = parquet.metadata.num_rows
        first = next(parquet.iter_batches(batch_size=1, columns=["run_id", "rank"]))
    except (OSError, pa.ArrowException, StopIteration) as exc:
        raise StoreError(f"cannot read the stored part {path}: {exc}") from exc
    return rows, str(first.column(0)[0].as_py()), int(first.column(1)[0].as_py())
