"""Facts about stored Parquet part files, read from their footers: column types, identity, canonical form.

A column that several parts of a model version have must have the same type in all of them, or the
version could not be read as one table. A part may lack a column others have (an optional column
of its task, such as per-box features that one tracing call recorded and another did not): it
reads as nulls there. Types are compared in their canonical form (a dictionary-encoded or large
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
    """``table`` cast to ``schema`` (a canonical schema); columns it lacks are nulls."""
    for field in schema:
        if field.name not in table.column_names:
            table = table.append_column(field.name, pa.nulls(table.num_rows, field.type))
    table = table.select(schema.names)
    return table if table.schema.equals(schema) else table.cast(schema)


def type_difference(found: ColumnTypes, expected: ColumnTypes, where: str) -> str | None:
    """Why a part with columns ``found`` cannot join parts with ``expected`` (``where`` names them):
    a column both have with different types; None if it can."""
    for name, found_type in found.items():
        if name in expected and found_type != expected[name]:
            return f"column {name!r} is {found_type} in this part but {expected[name]} in {where}"
    return None


def merged_types(*columns: ColumnTypes | None) -> ColumnTypes | None:
    """Every column of ``columns`` (first appearance first); None when all are None."""
    present = [c for c in columns if c is not None]
    if not present:
        return None
    merged: ColumnTypes = {}
    for types in present:
        for name, data_type in types.items():
            merged.setdefault(name, data_type)
    return merged


def footer_schema(path: Path) -> pa.Schema:
    """The Arrow schema of a stored Parquet file, from its footer; StoreError if it is unreadable."""
    try:
        return pq.ParquetFile(path).schema_arrow
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot read the stored part {path}: {exc}") from exc


def common_schema(paths: list[Path], where: str) -> pa.Schema | None:
    """The canonical schema of every column of ``paths`` (None without paths); TraceValidationError
    naming the first part whose column has another type than in the parts before it."""
    fields: dict[str, pa.Field] = {}
    for path in paths:
        schema = canonical_schema(footer_schema(path))
        problem = type_difference(column_types(schema), {n: str(f.type) for n, f in fields.items()}, where)
        if problem is not None:
            raise TraceValidationError(f"part {path.name}: {problem}")
        for field in schema:
            fields.setdefault(field.name, field)
    return pa.schema(list(fields.values())) if fields else None


def common_column_types(paths: list[Path], where: str) -> ColumnTypes | None:
    """The column types of every column of ``paths``, checked as ``common_schema`` checks them."""
    schema = common_schema(paths, where)
    return None if schema is None else column_types(schema)


def part_identity(path: Path) -> tuple[int, str, int]:
    """``(rows, run_id, rank)`` of a stored part (the upload checked that every row has the same run and rank)."""
    try:
        parquet = pq.ParquetFile(path)
        rows = parquet.metadata.num_rows
        first = next(parquet.iter_batches(batch_size=1, columns=["run_id", "rank"]))
    except (OSError, pa.ArrowException, StopIteration) as exc:
        raise StoreError(f"cannot read the stored part {path}: {exc}") from exc
    return rows, str(first.column(0)[0].as_py()), int(first.column(1)[0].as_py())
