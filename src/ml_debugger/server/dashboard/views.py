"""Page data of Home (the models) and Training (a model version's epochs, curves and evaluations)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ml_debugger.exceptions import NoDataError
from ml_debugger.server.dashboard import figures
from ml_debugger.server.dashboard.results import ResultReader, ResultRef
from ml_debugger.server.routes_catalog import headline, model_overview

HEADLINE_METRICS = 3
CURVE_RESULTS = 50
"""Training curves merge the metrics of at most this many of a version's latest results."""


def headline_metrics(rows: list[dict[str, Any]], limit: int = HEADLINE_METRICS) -> list[dict[str, Any]]:
    """Per dataset, its first ``limit`` metrics (counts left out): ``{dataset, metrics: [(name, value)]}``."""
    return [
        {
            "dataset": row["dataset"],
            "metrics": [(k, v) for k, v in row["metrics"].items() if k not in figures.NEUTRAL][:limit],
        }
        for row in rows
    ]


def home_view(reader: ResultReader) -> dict[str, Any]:
    models = model_overview(reader.store)
    for model in models:
        latest = model["latest_result"]
        model["headline"] = headline_metrics(latest["headline"]) if latest else []
    return {"models": models}


@dataclass
class TrainingView:
    """A model version's Training page."""

    model: dict[str, Any]
    version: dict[str, Any]
    results: list[dict[str, Any]]
    curves: figures.Figure | None
    shares: list[figures.Figure] = field(default_factory=list)


def find_model(reader: ResultReader, model: str) -> dict[str, Any]:
    """The overview entry of ``model``; NoDataError if unknown."""
    for entry in model_overview(reader.store, headlines=False):
        if entry["name"] == model:
            return entry
    raise NoDataError(f"unknown model {model!r}: nothing was ever traced under that model_name")


def latest_version(entry: dict[str, Any]) -> str:
    """The most recently active version of a model's overview entry."""
    versions = sorted(entry["versions"], key=lambda v: v["last_activity"] or "")
    if not versions:
        raise NoDataError(f"model {entry['name']!r} has no versions")
    return str(versions[-1]["name"])


def _merged(reader: ResultReader, refs: list[ResultRef], table: str) -> pd.DataFrame:
    """One row per dataset and epoch of ``table`` over ``refs`` (oldest first): the newest result wins."""
    frames = [reader.table(ref, table).assign(_order=i) for i, ref in enumerate(refs) if reader.has_table(ref, table)]
    if not frames:
        return pd.DataFrame()
    merged = pd.concat(frames, ignore_index=True).sort_values("_order")
    return merged.drop_duplicates(["dataset", "epoch"], keep="last").drop(columns="_order").sort_values(
        ["dataset", "epoch"]
    ).reset_index(drop=True)


def training_view(reader: ResultReader, model: str, version: str) -> TrainingView:
    entry = find_model(reader, model)
    selected = next((v for v in entry["versions"] if v["name"] == version), None)
    if selected is None:
        known = [v["name"] for v in entry["versions"]]
        raise NoDataError(f"model {model!r} has no version {version!r}; known versions: {known}")
    metas = reader.store.catalog.results(model, version)  # oldest first
    refs = [ResultRef(model, version, m["result_name"]) for m in metas][-CURVE_RESULTS:]
    results = [
        {**meta, "headline": headline_metrics(headline(reader.store, meta))} for meta in reversed(metas)
    ]
    metrics = _merged(reader, refs, "metrics")
    categories = _merged(reader, refs, "categories")
    shares = [] if categories.empty else [
        figure for dataset in sorted(categories["dataset"].unique())
        if (figure := figures.category_shares(categories, str(dataset))) is not None
    ]
    return TrainingView(
        model=entry, version=selected, results=results,
        curves=None if metrics.empty else figures.metric_curves(metrics), shares=shares,
    )
