"""Page data of the Evaluation page: one result at one dataset and epoch.

Everything comes from the result's tables, so any task's metrics, categories, codes, heatmaps
and clusters show without code of its own: metrics are the ``metrics`` table's columns, the
categories its ``categories`` table's ``*_ratio`` columns, heatmaps every ``heatmap_*`` table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from ml_debugger.evaluator.result import HEATMAP_PREFIX, Result
from ml_debugger.exceptions import NoDataError
from ml_debugger.server.dashboard import figures
from ml_debugger.server.dashboard.results import PREVIEWS, ResultReader, ResultRef
from ml_debugger.server.dashboard.samples import (
    COLUMN_FILTER,
    SamplePage,
    class_column,
    prediction_column,
    query_from_params,
    query_samples,
    sortable_columns,
)

PREFERRED_DATASETS = ("val", "valid", "validation", "test", "eval")
AXIS_ALIASES = {"class": ("object_class",)}
"""Heatmap axes named differently from the sample column they count (detection's ``class``)."""
PANEL_TABLES = ("metrics", "categories", "issues", "hotspots", "samples", "codes", "previews")
"""Tables the page has a panel for; every other small table of a result is shown as it is."""
MAX_EXTRA_ROWS = 200
CODE_FIELDS = ("code", "name", "count", "ratio", "description", "recommended_action", "affected_classes")
"""What the page shows of an issue; a task's issues table may leave the last five out."""
REPRESENTATIVES = "representative_input_ids"


@dataclass(frozen=True)
class Selection:
    """The dataset and epoch a page shows, and the choices."""

    dataset: str
    epoch: int
    datasets: list[str]
    epochs: list[int]


def _frame(result: Result, name: str) -> pd.DataFrame:
    return result.tables.get(name, pd.DataFrame())


def select(result: Result, dataset: str | None, epoch: int | None) -> Selection:
    """The dataset (default: a validation-like one, else the first) and epoch (default: its latest)."""
    metrics = _frame(result, "metrics")
    datasets = [str(d) for d in result.meta.get("datasets", [])] or sorted(metrics["dataset"].unique())
    if not datasets:
        raise NoDataError(f"result {result.name!r} has no datasets")
    if dataset is None:
        dataset = next((d for d in PREFERRED_DATASETS if d in datasets), datasets[0])
    elif dataset not in datasets:
        raise NoDataError(f"result {result.name!r} has no dataset {dataset!r}; it has {datasets}")
    epochs = sorted(int(e) for e in metrics.loc[metrics["dataset"] == dataset, "epoch"]) or result.epochs
    if epoch is None:
        epoch = epochs[-1]
    elif epoch not in epochs:
        raise NoDataError(f"result {result.name!r} has no epoch {epoch} for {dataset!r}; it has {epochs}")
    return Selection(dataset=dataset, epoch=epoch, datasets=datasets, epochs=epochs)


def _at(frame: pd.DataFrame, selection: Selection, *, dataset: bool = True) -> pd.DataFrame:
    """The rows of ``frame`` at the selected epoch (and dataset), where it has those columns."""
    mask = pd.Series(True, index=frame.index)
    if "epoch" in frame.columns:
        mask &= frame["epoch"] == selection.epoch
    if dataset and "dataset" in frame.columns:
        mask &= frame["dataset"] == selection.dataset
    return frame[mask]


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values (NaN as None, arrays as lists)."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{k: v.tolist() if hasattr(v, "tolist") else v for k, v in row.items()} for row in rows]


def category_rows(result: Result, selection: Selection) -> list[dict[str, Any]]:
    row = _at(_frame(result, "categories"), selection)
    if row.empty:
        return []
    return [
        {"name": c.removesuffix("_ratio"), "share": float(row[c].iloc[0]),
         "color": figures.CATEGORY_COLORS.get(c.removesuffix("_ratio"), "#90a4ae")}
        for c in row.columns if c.endswith("_ratio")
    ]


def _issues(result: Result, selection: Selection) -> pd.DataFrame:
    issues = _at(_frame(result, "issues"), selection)
    return issues.assign(**{c: None for c in CODE_FIELDS if c not in issues.columns})


def code_groups(result: Result, selection: Selection, categories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The selection's error codes grouped by category (categories in their order), most frequent first."""
    issues = _issues(result, selection)
    if issues.empty:
        return []
    shares = {c["name"]: c["share"] for c in categories}
    order = list(shares) + sorted(set(issues["category"]) - set(shares))
    groups = []
    for name in order:
        codes = issues[issues["category"] == name].sort_values(["count", "code"], ascending=[False, True])
        if not codes.empty:
            groups.append({"category": name, "share": shares.get(name), "codes": records(codes),
                           "color": figures.CATEGORY_COLORS.get(name, "#90a4ae")})
    return groups


def top_codes(result: Result, selection: Selection, limit: int = 5) -> list[dict[str, Any]]:
    issues = _issues(result, selection)
    return [] if issues.empty else records(issues.sort_values("count", ascending=False).head(limit))


def heatmap_filters(schema: pa.Schema) -> dict[str, str]:
    """Heatmap axis column -> the sample-table filter a click on that axis sets: the named filters,
    else an equality filter on the sample column of that name (``AXIS_ALIASES`` for other names)."""
    filters = {column: f"{COLUMN_FILTER}{column}" for column in sortable_columns(schema)}
    for axis, columns in AXIS_ALIASES.items():
        column = next((c for c in columns if c in schema.names), None)
        if column is not None:
            filters[axis] = f"{COLUMN_FILTER}{column}"
    filters |= {"dataset": "dataset", "epoch": "epoch", "category": "category", "code": "code"}
    for column, name in ((class_column(schema), "label"), (prediction_column(schema), "prediction")):
        if column is not None:
            filters[column] = name
    return filters


def heatmaps(result: Result, selection: Selection, filters: dict[str, str]) -> list[dict[str, Any]]:
    panels = []
    for name in result.heatmap_names():
        table = result.get_heatmap(name)
        rows, columns = figures.heatmap_axes(table)
        title = f"{rows} × {columns}"
        figure = figures.heatmap_figure(table, dataset=selection.dataset, epoch=selection.epoch, filters=filters)
        panels.append({"name": name, "title": title, "figure": figure})
    return panels


def hotspot_rows(result: Result, selection: Selection) -> tuple[list[str], list[dict[str, Any]]]:
    """The selection's clusters (every column of the table but dataset and epoch)."""
    clusters = _at(_frame(result, "hotspots"), selection)
    columns = [c for c in clusters.columns if c not in ("dataset", "epoch", REPRESENTATIVES)]
    return columns, records(clusters)


def extra_tables(result: Result, selection: Selection) -> list[dict[str, Any]]:
    """The task's own tables (per-class AP, TIDE, range, ...) at the selection, as they are."""
    extra = []
    for name, table in sorted(result.tables.items()):
        if name in PANEL_TABLES or name.startswith(HEATMAP_PREFIX):
            continue
        rows = _at(table, selection)
        columns = [c for c in rows.columns if c not in ("dataset", "epoch")]
        extra.append({"name": name, "columns": columns, "rows": records(rows.head(MAX_EXTRA_ROWS)),
                      "total": len(rows)})
    return extra


@dataclass
class EvaluationView:
    ref: ResultRef
    result: Result
    selection: Selection
    metric_columns: list[str]
    metrics: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    code_groups: list[dict[str, Any]]
    top_codes: list[dict[str, Any]]
    heatmaps: list[dict[str, Any]]
    hotspot_columns: list[str]
    hotspots: list[dict[str, Any]]
    samples: SamplePage
    previews: bool
    extra_tables: list[dict[str, Any]]


def has_previews(reader: ResultReader, ref: ResultRef) -> bool:
    """The result stores image previews (a ``previews`` table, or a ``preview`` column in ``samples``)."""
    return reader.has_table(ref, PREVIEWS) or "preview" in reader.samples(ref).schema.names


def evaluation_view(
    reader: ResultReader, ref: ResultRef, dataset: str | None, epoch: int | None, params: Mapping[str, str]
) -> EvaluationView:
    """The page's data; ``params`` are the sample table's URL parameters (by default it shows the
    selected dataset and epoch)."""
    result = reader.result(ref)
    selection = select(result, dataset, epoch)
    samples = reader.samples(ref)
    query = query_from_params(params, dataset=selection.dataset, epoch=selection.epoch)
    categories = category_rows(result, selection)
    metrics = _at(_frame(result, "metrics"), selection, dataset=False).drop(columns="epoch", errors="ignore")
    hotspot_columns, hotspots = hotspot_rows(result, selection)
    return EvaluationView(
        ref=ref, result=result, selection=selection,
        metric_columns=list(metrics.columns), metrics=records(metrics),
        categories=categories, code_groups=code_groups(result, selection, categories),
        top_codes=top_codes(result, selection),
        heatmaps=heatmaps(result, selection, heatmap_filters(samples.schema)),
        hotspot_columns=hotspot_columns, hotspots=hotspots, samples=query_samples(samples, query),
        previews=has_previews(reader, ref), extra_tables=extra_tables(result, selection),
    )

