"""Plotly figures built from result tables, as JSON-ready dicts for plotly.js (``data``, ``layout``).

Figures are built with ``plotly.graph_objects`` (validated, the same plotly.js version as the
vendored bundle) and handed to the page as data; no figure code runs in the browser.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pandas as pd

from ml_debugger.evaluator.analysis.heatmaps import heatmap_matrix

MAX_ANNOTATED = 400
CATEGORY_COLORS = {
    "stable_coverage": "#2e7d32", "operational_coverage": "#9ccc65", "hotspot": "#fb8c00",
    "recessive_hotspot": "#fdd835", "critical_hotspot": "#d32f2f", "aleatoric_hotspot": "#8e24aa",
}
SIZES = ("small", "medium", "large")
NEUTRAL = ("counts",)
"""Metric columns that are sizes, not quality: left out of the curves and headlines."""
FONT = {"family": "system-ui, sans-serif", "size": 12}
Figure = dict[str, Any]


def _to_dict(figure: Any) -> Figure:
    import plotly.io as pio

    return json.loads(pio.to_json(figure, validate=False))


def _layout(**extra: Any) -> dict[str, Any]:
    return {"font": FONT, "margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "paper_bgcolor": "white", **extra}


def heatmap_axes(table: pd.DataFrame) -> tuple[str, str]:
    """The row and column axes of a tidy heatmap table: its last two key columns."""
    keys = [c for c in table.columns if c != "count"]
    return keys[-2], keys[-1]


def _labels(values: pd.Index, grid: bool) -> list[Any]:
    """Axis values: numbers on a spatial grid (a bird's-eye view), else category names."""
    return [float(v) for v in values] if grid else [str(v) for v in values]


def _order(labels: pd.Index) -> list[Any]:
    """Issue categories in their order, size names small to large, bins like ``0-20m`` / ``100+`` by
    their lower bound; anything else in the order given (the pivot's, sorted)."""
    values = [str(v) for v in labels]
    if len(values) and set(values) <= set(CATEGORY_COLORS):
        return sorted(labels, key=lambda v: list(CATEGORY_COLORS).index(str(v)))
    if len(values) and set(values) <= set(SIZES):
        return sorted(labels, key=lambda v: SIZES.index(str(v)))
    bounds = [re.match(r"-?\d+(\.\d+)?", v) for v in values]
    if len(values) and all(bounds) and not pd.api.types.is_numeric_dtype(labels):
        return [label for _, label in sorted(zip((float(b.group()) for b in bounds), labels, strict=True))]
    return list(labels)


def _ordered(matrix: pd.DataFrame) -> pd.DataFrame:
    return matrix.reindex(index=_order(matrix.index), columns=_order(matrix.columns))


def _tick_angle(labels: pd.Index) -> int:
    """Slant the column labels when they would overlap."""
    longest = max((len(str(label)) for label in labels), default=0)
    return -35 if longest * len(labels) > 60 else 0


def heatmap_figure(
    table: pd.DataFrame, *, dataset: str | None, epoch: int | None, filters: dict[str, str]
) -> Figure | None:
    """A count heatmap of one tidy table for ``dataset`` / ``epoch`` (where they are not axes).

    Axes are categories (rows top down), except that two float axes are a spatial grid (a
    bird's-eye view: linear axes, equal scales, rows bottom up).

    ``filters`` maps axis columns to sample-table filters; the page uses it to filter the sample
    table when a cell is clicked. ``None`` when the selection has no cells.
    """
    import plotly.graph_objects as go

    if len(table.columns) < 3:
        return None
    rows, columns = heatmap_axes(table)
    selection = {
        "dataset": dataset if "dataset" in table.columns and "dataset" not in (rows, columns) else None,
        "epoch": epoch if "epoch" in table.columns and "epoch" not in (rows, columns) else None,
    }
    matrix = _ordered(heatmap_matrix(table, rows=rows, columns=columns, **selection))
    if matrix.empty:
        return None
    z = matrix.to_numpy()
    grid = pd.api.types.is_float_dtype(matrix.index) and pd.api.types.is_float_dtype(matrix.columns)
    annotate = z.size <= MAX_ANNOTATED and not grid
    trace = go.Heatmap(
        z=z, x=_labels(matrix.columns, grid), y=_labels(matrix.index, grid), colorscale="Blues",
        texttemplate="%{z}" if annotate else None, hovertemplate=f"{rows} %{{y}}<br>{columns} %{{x}}<br>count %{{z}}"
        "<extra></extra>", colorbar={"thickness": 12},
    )
    height = min(720, max(280, 90 + 24 * len(matrix.index)))
    layout = _layout(
        height=height, margin={"l": 60, "r": 20, "t": 10, "b": 50},
        xaxis={"type": "linear" if grid else "category", "title": {"text": columns},
               "tickangle": 0 if grid else _tick_angle(matrix.columns)},
        yaxis={"type": "linear", "title": {"text": rows}, "scaleanchor": "x"} if grid
        else {"type": "category", "title": {"text": rows}, "autorange": "reversed"},
        meta={"filters": {"y": filters.get(rows), "x": filters.get(columns)}},
    )
    return _to_dict(go.Figure(data=[trace], layout=layout))


def metric_curves(metrics: pd.DataFrame) -> Figure | None:
    """One small panel per metric, a line per dataset, over epochs (``dataset, epoch, <metrics>``)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = [
        c for c in metrics.columns
        if c not in ("dataset", "epoch", *NEUTRAL) and pd.api.types.is_numeric_dtype(metrics[c])
    ]
    if metrics.empty or not names:
        return None
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    figure = make_subplots(rows=rows, cols=cols, subplot_titles=names, vertical_spacing=min(0.12, 0.4 / rows))
    palette = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#00838f", "#ad1457"]
    for d, (dataset, frame) in enumerate(metrics.sort_values("epoch").groupby("dataset", sort=True)):
        for i, name in enumerate(names):
            figure.add_trace(
                go.Scatter(
                    x=frame["epoch"].tolist(), y=frame[name].tolist(), name=str(dataset), legendgroup=str(dataset),
                    showlegend=i == 0, mode="lines+markers", line={"color": palette[d % len(palette)]},
                ),
                row=i // cols + 1, col=i % cols + 1,
            )
    figure.update_xaxes(dtick=1, title_text=None)
    figure.update_layout(_layout(height=230 * rows + 40, legend={"orientation": "h", "y": -0.08}))
    return _to_dict(figure)


def category_shares(categories: pd.DataFrame, dataset: str) -> Figure | None:
    """Stacked bars of the category shares of ``dataset`` per epoch (``dataset, epoch, <name>_ratio``)."""
    import plotly.graph_objects as go

    frame = categories[categories["dataset"] == dataset].sort_values("epoch")
    ratios = [c for c in frame.columns if c.endswith("_ratio")]
    if frame.empty or not ratios:
        return None
    traces = [
        go.Bar(
            x=[str(e) for e in frame["epoch"]], y=frame[column].tolist(), name=column.removesuffix("_ratio"),
            marker={"color": CATEGORY_COLORS.get(column.removesuffix("_ratio"))},
            hovertemplate="epoch %{x}: %{y:.1%}<extra>%{fullData.name}</extra>",
        )
        for column in ratios
    ]
    layout = _layout(
        title={"text": f"{dataset}: issue categories per epoch", "font": {"size": 14}}, barmode="stack", height=320,
        yaxis={"tickformat": ".0%", "range": [0, 1]}, xaxis={"type": "category", "title": {"text": "epoch"}},
    )
    return _to_dict(go.Figure(data=traces, layout=layout))


def category_shift(shares: pd.DataFrame) -> Figure | None:
    """Grouped bars: one group per category, one bar per result (``category, result, share``)."""
    import plotly.graph_objects as go

    if shares.empty:
        return None
    traces = [
        go.Bar(x=frame["category"].tolist(), y=frame["share"].tolist(), name=str(result),
               hovertemplate="%{x}: %{y:.1%}<extra>%{fullData.name}</extra>")
        for result, frame in shares.groupby("result", sort=False)
    ]
    layout = _layout(barmode="group", height=340, yaxis={"tickformat": ".0%"},
                     legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return _to_dict(go.Figure(data=traces, layout=layout))
