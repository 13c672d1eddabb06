"""The schema of trace rows: the common columns plus a task's, checked the same way everywhere.

A :class:`TraceSchema` is the one definition of a task's rows: the tracers' batches build
columns of these types, the server checks every uploaded part against it (first the column types
from the file's footer, then the values), so a part that would make a version unreadable is
refused with an error that names the column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ml_debugger.core.schema import COMMON_FIELDS
from ml_debugger.exceptions import TraceValidationError
from ml_debugger.tasks._columns import MAX_DETECTIONS, THRESHOLD

TypeTest = Callable[[pa.DataType], bool]
ValueCheck = Callable[[pa.Table], "str | None"]
"""A check of a table's values: ``None`` when they are fine, else a message naming the column."""


@dataclass(frozen=True)
class Column:
    """One column of a trace row.

    Attributes:
        name: the column name.
        expected: the accepted type(s) in words, for error messages (``"list<int64>"``).
        accepts: whether a column of that Arrow type is accepted.
        nullable: whether null values are allowed (null items inside lists never are).
        required: whether every part must have the column.
    """

    name: str
    expected: str
    accepts: TypeTest
    nullable: bool = False
    required: bool = True


def exactly(data_type: pa.DataType) -> TypeTest:
    return lambda t: t == data_type


def fixed_size_list_of(*value_types: pa.DataType, size: int | None = None) -> TypeTest:
    """A fixed-size list of one of ``value_types`` (of ``size`` items, any size when None)."""
    return lambda t: (
        pa.types.is_fixed_size_list(t) and t.value_type in value_types and (size is None or t.list_size == size)
    )


def list_of(item: TypeTest) -> TypeTest:
    """A variable-length list whose items pass ``item``."""
    return lambda t: (pa.types.is_list(t) or pa.types.is_large_list(t)) and item(t.value_type)


def string_like(t: pa.DataType) -> bool:
    """A string column, plain or dictionary-encoded (as Parquet gives back a dictionary page)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


COMMON_COLUMNS = tuple(
    Column(f.name, str(f.type), exactly(f.type), nullable=f.nullable) for f in COMMON_FIELDS
)


THRESHOLD_COLUMNS = (
    Column("score_thresh", "float32", exactly(THRESHOLD), nullable=True),
    Column("iou_thresh", "float32", exactly(THRESHOLD), nullable=True),
    Column("max_detections", "int32", exactly(MAX_DETECTIONS), nullable=True),
)
"""The post-processing settings a detector's rows were made with (null: not applied or unknown)."""

PREVIEW_COLUMN = Column("preview", "binary (a JPEG)", exactly(pa.binary()), required=False)
"""A small JPEG of the input, for the dashboard (``previews=True``; see ``ml_debugger.core.previews``)."""


def _nonnegative(name: str) -> ValueCheck:
    def check(table: pa.Table) -> str | None:
        smallest = pc.min(table.column(name)).as_py()
        return None if smallest is None or smallest >= 0 else f"column {name!r} has negative values ({smallest})"

    return check


def _nonempty_ids(table: pa.Table) -> str | None:
    if pc.any(pc.equal(pc.utf8_length(table.column("input_id")), 0)).as_py():
        return "column 'input_id' has empty strings; every row needs an id"
    return None


def same_lengths(*columns: str) -> ValueCheck:
    """Every row has as many items in each of the list ``columns`` that the table has."""

    def check(table: pa.Table) -> str | None:
        names = [c for c in columns if c in table.column_names]
        reference = pc.list_value_length(table.column(names[0]))
        for name in names[1:]:
            lengths = pc.list_value_length(table.column(name))
            if not pc.all(pc.equal(lengths, reference)).as_py():
                return f"column {name!r} has a different number of items than {names[0]!r} in some rows"
        return None

    return check


def nonnegative_items(name: str) -> ValueCheck:
    """No item of the list column ``name`` (when the table has it) is negative."""

    def check(table: pa.Table) -> str | None:
        if name not in table.column_names:
            return None
        smallest = pc.min(pc.list_flatten(table.column(name))).as_py()
        return None if smallest is None or smallest >= 0 else f"column {name!r} has negative values ({smallest})"

    return check


def finite_items(name: str) -> ValueCheck:
    """Every item of the list column ``name`` (when the table has it) is finite."""

    def check(table: pa.Table) -> str | None:
        if name not in table.column_names:
            return None
        values = pc.list_flatten(table.column(name))
        return None if pc.all(pc.is_finite(values)).as_py() in (True, None) else f"column {name!r} has NaN or infinite values"

    return check


COMMON_CHECKS: tuple[ValueCheck, ...] = (
    _nonnegative("epoch"), _nonnegative("rank"), _nonnegative("global_step"), _nonempty_ids,
)


def _has_nested_nulls(array: pa.ChunkedArray) -> bool:
    """Whether a list column has null items at any depth (its own nulls are not counted)."""
    for chunk in array.chunks:
        values = chunk
        while pa.types.is_list(values.type) or pa.types.is_large_list(values.type) or pa.types.is_fixed_size_list(values.type):
            values = values.flatten()
            if values.null_count:
                return True
    return False


@dataclass(frozen=True)
class TraceSchema:
    """The columns of one task's trace rows beside the common ones, and checks of their values.

    Attributes:
        columns: the task's columns.
        checks: checks of values across the task's columns (ranges, equal list lengths, ...);
            they run after the types and nulls are known to be right.
    """

    columns: tuple[Column, ...]
    checks: tuple[ValueCheck, ...] = ()

    @property
    def all_columns(self) -> tuple[Column, ...]:
        return COMMON_COLUMNS + self.columns

    def check_types(self, schema: pa.Schema) -> None:
        """Raise TraceValidationError unless ``schema`` has the right columns with accepted types.

        Needs only a file's schema (a Parquet footer), so a part can be refused before decoding.
        """
        known = {c.name: c for c in self.all_columns}
        problems = [
            f"missing column {c.name!r} ({c.expected})" for c in self.all_columns
            if c.required and c.name not in schema.names
        ]
        for field in schema:
            column = known.get(field.name)
            if column is None:
                problems.append(f"unknown column {field.name!r}")
            elif not column.accepts(field.type):
                problems.append(f"column {field.name!r} is {field.type}, expected {column.expected}")
        if len(set(schema.names)) != len(schema.names):
            problems.append("duplicate column names")
        if problems:
            raise TraceValidationError("the part does not have the trace schema: " + "; ".join(problems))

    def check_values(self, table: pa.Table) -> None:
        """Raise TraceValidationError naming the column of the first bad value (types already checked)."""
        for column in self.all_columns:
            if column.name not in table.column_names:
                continue
            array = table.column(column.name)
            if not column.nullable and array.null_count:
                raise TraceValidationError(f"column {column.name!r} has {array.null_count} null values")
            if _has_nested_nulls(array):
                raise TraceValidationError(f"column {column.name!r} has null items inside its lists")
        for check in COMMON_CHECKS + self.checks:
            problem = check(table)
            if problem is not None:
                raise TraceValidationError(problem)

    def check(self, table: pa.Table) -> None:
        """`check_types` and `check_values` of a whole table."""
        self.check_types(table.schema)
        self.check_values(table)
