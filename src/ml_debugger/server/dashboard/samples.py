"""The sample table of a result, filtered, sorted and paged on the server.

Only the columns a request needs are read (never a preview column, see `sample_source`); the
scalar filters are one Arrow expression, the error-code filter a list-membership mask, and a page
is a slice of the sort order, so only the page's rows are gathered. The same query streams the
whole filtered table as CSV.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.server.dashboard.sample_source import SampleSource, is_binary

CODES = "error_codes"
CLUSTER = "hotspot_cluster"
CLASS_COLUMNS = ("label", "gt_label", "gt_class", "class_id")
"""The class filter matches the first of these the table has."""
PREDICTION_COLUMNS = ("prediction", "pred_label", "pred_class")
LEADING = ("input_id", "unit_id", "dataset", "epoch")
"""Columns shown first, then the class columns, ``category``, the codes and the cluster."""
SIGNALS = (
    "unit_type", "error_type", "confidence", "score", "margin", "loss", "iou", "distance", "error_proba",
    "label_quality", "knn_error_rate",
)
"""Preferred columns of the default view after those (a table without them shows its first others)."""
HIDDEN = ("input_hash", "global_step", "preview")
DEFAULT_WIDTH = 14
COLUMN_FILTER = "f."
"""URL parameters ``f.<column>=<value>`` filter any scalar column by equality (a heatmap cell sets them)."""
MAX_COLUMN_FILTERS = 8
PAGE_SIZES = (25, 50, 100, 200)
CSV_BATCH = 20_000


@dataclass(frozen=True)
class SampleQuery:
    """Filters (None: any), sort column, direction and page of the sample table."""

    dataset: str | None = None
    epoch: int | None = None
    category: str | None = None
    code: str | None = None
    label: str | None = None
    prediction: str | None = None
    cluster: int | None = None
    sort: str | None = None
    descending: bool = False
    page: int = 1
    page_size: int = 50
    all_columns: bool = False
    columns: tuple[tuple[str, str], ...] = ()

    def without(self, column: str) -> tuple[tuple[str, str], ...]:
        """The column filters but the one on ``column``."""
        return tuple((name, value) for name, value in self.columns if name != column)

    def params(self, **changes: Any) -> dict[str, Any]:
        """The query as URL parameters (with ``changes``), leaving out the defaults."""
        query = replace(self, **changes)
        values = {
            "dataset": query.dataset, "epoch": query.epoch, "category": query.category, "code": query.code,
            "label": query.label, "prediction": query.prediction, "cluster": query.cluster, "sort": query.sort,
            "desc": int(query.descending) or None, "page": query.page if query.page != 1 else None,
            "page_size": query.page_size if query.page_size != 50 else None,
            "all_columns": int(query.all_columns) or None,
            **{f"{COLUMN_FILTER}{name}": value for name, value in query.columns},
        }
        return {k: v for k, v in values.items() if v is not None}


def _integer(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer; got {text!r}") from None


def query_from_params(params: Mapping[str, str], **defaults: Any) -> SampleQuery:
    """A query from URL parameters (empty values mean "any"); ``defaults`` fill the missing ones."""
    names = ("dataset", "category", "code", "label", "prediction", "sort")
    texts = {k: params.get(k, "").strip() or None for k in names}
    page_size = _integer(params, "page_size") or 50
    if page_size not in PAGE_SIZES:
        raise ConfigurationError(f"page_size must be one of {PAGE_SIZES}; got {page_size}")
    columns = tuple(
        (k[len(COLUMN_FILTER):], v.strip()) for k, v in params.items() if k.startswith(COLUMN_FILTER) and v.strip()
    )
    if len(columns) > MAX_COLUMN_FILTERS:
        raise ConfigurationError(f"at most {MAX_COLUMN_FILTERS} column filters; got {len(columns)}")
    values = {
        **texts, "columns": columns, "epoch": _integer(params, "epoch"), "cluster": _integer(params, "cluster"),
        "descending": params.get("desc", "") in ("1", "true", "on"), "page": max(1, _integer(params, "page") or 1),
        "page_size": page_size, "all_columns": params.get("all_columns", "") in ("1", "true", "on"),
    }
    given = {k: v for k, v in values.items() if k not in defaults or k in params}
    return SampleQuery(**{**defaults, **given})


@dataclass(frozen=True)
class SamplePage:
    """One page of the filtered, sorted table."""

    query: SampleQuery
    columns: list[str]
    rows: list[dict[str, Any]]
    total: int
    pages: int
    sortable: list[str] = field(default_factory=list)


def _first_present(names: tuple[str, ...], schema: pa.Schema) -> str | None:
    return next((n for n in names if n in schema.names), None)


def class_column(schema: pa.Schema) -> str | None:
    return _first_present(CLASS_COLUMNS, schema)


def prediction_column(schema: pa.Schema) -> str | None:
    return _first_present(PREDICTION_COLUMNS, schema)


def _is_shown(field_: pa.Field) -> bool:
    """Scalars and lists (joined in the table), but no binary column (previews)."""
    if field_.name in HIDDEN or is_binary(field_.type):
        return False
    return not pa.types.is_nested(field_.type) or pa.types.is_list(field_.type)


def display_columns(schema: pa.Schema, all_columns: bool = False) -> list[str]:
    """The columns the table shows: identity, classes, category, codes, cluster, then signals."""
    shown = [f.name for f in schema if _is_shown(f)]
    head = [c for c in (*LEADING, class_column(schema), prediction_column(schema), "category", CODES, CLUSTER)
            if c in shown]
    rest = [c for c in shown if c not in head]
    if all_columns:
        return head + rest
    signals = [c for c in SIGNALS if c in rest] or rest
    return head + signals[: max(0, DEFAULT_WIDTH - len(head))]


def _value(schema: pa.Schema, column: str, text: str | int) -> pa.Scalar:
    """``text`` as a scalar of the column's type (a ConfigurationError if it cannot be)."""
    type_ = schema.field(column).type
    if pa.types.is_dictionary(type_):
        type_ = type_.value_type
    try:
        return pa.array([str(text)]).cast(type_)[0]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConfigurationError(f"cannot filter {column} by {text!r}: {exc}") from exc


def _filter(schema: pa.Schema, query: SampleQuery) -> ds.Expression | None:
    wanted = [
        ("dataset", query.dataset), ("epoch", query.epoch), ("category", query.category),
        (class_column(schema), query.label), (prediction_column(schema), query.prediction), (CLUSTER, query.cluster),
        *query.columns,
    ]
    expression = None
    for column, value in wanted:
        if value is None:
            continue
        if column is None or column not in sortable_columns(schema):
            raise ConfigurationError(
                f"this result's samples cannot be filtered by {column}; scalar columns: {sortable_columns(schema)}"
            )
        term = ds.field(column) == _value(schema, column, value)
        expression = term if expression is None else expression & term
    return expression


def _code_mask(codes: pa.ChunkedArray, code: str) -> np.ndarray:
    array = codes.combine_chunks()
    hits = pc.equal(pc.list_flatten(array), code).to_numpy(zero_copy_only=False)
    mask = np.zeros(len(array), dtype=bool)
    mask[pc.list_parent_indices(array).to_numpy()[hits]] = True
    return mask


def _order(source: SampleSource, query: SampleQuery) -> pa.Array:
    """The row numbers the query selects, in its order."""
    schema = source.schema
    if query.sort is not None and query.sort not in sortable_columns(schema):
        raise ConfigurationError(f"cannot sort by {query.sort!r}; sortable columns: {sortable_columns(schema)}")
    if query.code is not None and CODES not in schema.names:
        raise ConfigurationError(f"this result's samples have no {CODES} column")
    expression = _filter(schema, query)
    needed = [*_filter_columns(schema, query), *([query.sort] if query.sort else []), *([CODES] if query.code else [])]
    rows = pa.array(np.arange(source.num_rows))
    table = source.read(list(dict.fromkeys(needed))).append_column("_row", rows) if needed else pa.table({"_row": rows})
    if expression is not None:
        table = table.filter(expression)
    if query.code is not None:
        table = table.filter(pa.array(_code_mask(table.column(CODES), query.code)))
    if query.sort is None:
        return table.column("_row").combine_chunks()
    order = "descending" if query.descending else "ascending"
    return table.column("_row").take(pc.sort_indices(table, sort_keys=[(query.sort, order)])).combine_chunks()


def _filter_columns(schema: pa.Schema, query: SampleQuery) -> list[str]:
    values = {"dataset": query.dataset, "epoch": query.epoch, "category": query.category,
              class_column(schema): query.label, prediction_column(schema): query.prediction, CLUSTER: query.cluster}
    return [*(c for c, v in values.items() if c is not None and v is not None), *(c for c, _ in query.columns)]


def sortable_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if not pa.types.is_nested(f.type) and not is_binary(f.type)]


def query_samples(source: SampleSource, query: SampleQuery) -> SamplePage:
    """One page of the sample table (the page number is clamped to the last page)."""
    columns = display_columns(source.schema, query.all_columns)
    order = _order(source, query)
    pages = max(1, -(-len(order) // query.page_size))
    page = min(max(1, query.page), pages)
    rows = source.read(columns).take(order.slice((page - 1) * query.page_size, query.page_size)).to_pylist()
    return SamplePage(
        query=replace(query, page=page), columns=columns, rows=rows, total=len(order), pages=pages,
        sortable=[c for c in columns if c in sortable_columns(source.schema)],
    )


def _csv_ready(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Lists as their items joined with ';' (CSV has no lists)."""
    if not pa.types.is_list(column.type) and not pa.types.is_large_list(column.type):
        return column
    return pc.binary_join(column.cast(pa.list_(pa.string())), ";")


def export_csv(source: SampleSource, query: SampleQuery) -> Iterator[bytes]:
    """Every filtered row (all shown columns, lists joined with ';'), in the query's order, as CSV."""
    columns = display_columns(source.schema, all_columns=True)
    table = source.read(columns).take(_order(source, query))
    table = pa.table({name: _csv_ready(table.column(name)) for name in columns})
    sink = io.BytesIO()
    with pa_csv.CSVWriter(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=CSV_BATCH):
            writer.write_batch(batch)
            yield sink.getvalue()
            sink.seek(0)
            sink.truncate()
    if sink.tell():
        yield sink.getvalue()


@dataclass(frozen=True)
class Facets:
    """The values each filter can take (for the filter form's options)."""

    datasets: list[str]
    epochs: list[int]
    categories: list[str]
    codes: list[str]
    labels: list[Any]
    predictions: list[Any]
    clusters: list[int]


def facets(source: SampleSource) -> Facets:
    """Distinct values of the filter columns (reads only those columns)."""
    schema = source.schema
    label, prediction = class_column(schema), prediction_column(schema)
    wanted = [c for c in ("dataset", "epoch", "category", CODES, label, prediction, CLUSTER) if c in schema.names]
    table = source.read(wanted)

    def distinct(column: str | None) -> list[Any]:
        if column is None or column not in table.column_names:
            return []
        array = table.column(column)
        if column == CODES:
            array = pc.list_flatten(array.combine_chunks())
        return sorted(v for v in pc.unique(array).to_pylist() if v is not None)

    return Facets(
        datasets=distinct("dataset"), epochs=distinct("epoch"), categories=distinct("category"),
        codes=distinct(CODES), labels=distinct(label), predictions=distinct(prediction), clusters=distinct(CLUSTER),
    )
