"""``GET /api/v1/models``: every model with its task, versions, committed epochs, last activity and
the headline metrics of its latest result (also what the dashboard's Home page shows)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import pyarrow.parquet as pq
from fastapi import APIRouter, Depends

from ml_debugger.evaluator.result import Result
from ml_debugger.exceptions import NoDataError
from ml_debugger.server.context import ServerContext, context
from ml_debugger.store.catalog import Catalog
from ml_debugger.store.local import LocalStore

router = APIRouter()
Context = Annotated[ServerContext, Depends(context)]


@dataclass
class _Version:
    name: str
    created_at: str
    epochs: list[int] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    last_commit: str | None = None


def _catalog_rows(catalog: Catalog) -> tuple[list[tuple], list[tuple], list[tuple], list[tuple]]:
    """Models, versions, committed epochs (with their last commit) and results, in four queries.

    The catalog has no listing methods yet; these read its tables through its database handle.
    """
    with catalog.db.transaction() as db:
        models = db.query("SELECT name, task, created_at FROM models ORDER BY name")
        versions = db.query("SELECT model, name, created_at FROM versions ORDER BY model, created_at, name")
        epochs = db.query(
            "SELECT model, version, epoch, MAX(committed_at) FROM parts GROUP BY model, version, epoch "
            "ORDER BY model, version, epoch"
        )
        results = db.query("SELECT model, version, meta FROM results ORDER BY created_at")
    return models, versions, epochs, results


def _instant(stamp: str | None) -> datetime | None:
    return None if stamp is None else datetime.fromisoformat(str(stamp))


def _latest(*stamps: str | None) -> str | None:
    present = [s for s in stamps if s is not None]
    return max(present, key=_instant) if present else None


def headline(store: LocalStore, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Each dataset's metrics at its latest evaluated epoch (``Result.metrics_summary``), NaN as None."""
    try:
        path = store.result_table_path(meta["model_name"], meta["version_name"], meta["result_name"], "metrics")
    except NoDataError:
        return []
    summary = Result(meta, {"metrics": pq.read_table(path).to_pandas()}).metrics_summary()
    rows = json.loads(summary.to_json(orient="records"))
    return [
        {"dataset": row.pop("dataset"), "metrics": {k: v for k, v in row.items() if not _is_nan(v)}} for row in rows
    ]


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def model_overview(store: LocalStore, *, headlines: bool = True) -> list[dict[str, Any]]:
    """Every model of the store's catalog, most recently active first (see the module docstring).

    ``headlines=False`` leaves out the latest result's metrics (which read one file per model).
    """
    models, version_rows, epoch_rows, result_rows = _catalog_rows(store.catalog)
    versions: dict[str, dict[str, _Version]] = defaultdict(dict)
    for model, name, created in version_rows:
        versions[model][name] = _Version(str(name), str(created))
    for model, version, epoch, committed in epoch_rows:
        entry = versions[model][version]
        entry.epochs.append(int(epoch))
        entry.last_commit = _latest(entry.last_commit, str(committed))
    for model, version, meta in result_rows:
        versions[model][version].results.append(json.loads(meta))

    overview = []
    for name, task, created in models:
        entries = list(versions[name].values())
        metas = sorted((m for v in entries for m in v.results), key=lambda m: _instant(m["created_at"]))
        latest = metas[-1] if metas else None
        stamps = [str(created)] + [s for v in entries for s in (v.created_at, v.last_commit)]
        overview.append({
            "name": name, "task": task, "created_at": created,
            "last_activity": _latest(*stamps, *(m["created_at"] for m in metas)),
            "versions": [
                {
                    "name": v.name, "created_at": v.created_at, "epochs": v.epochs, "results": len(v.results),
                    "last_activity": _latest(v.created_at, v.last_commit, *(m["created_at"] for m in v.results)),
                }
                for v in entries
            ],
            "latest_result": None if latest is None else {
                "version_name": latest["version_name"], "result_name": latest["result_name"],
                "created_at": latest["created_at"], "headline": headline(store, latest) if headlines else [],
            },
        })
    return sorted(overview, key=lambda m: _instant(m["last_activity"]), reverse=True)


@router.get("/models", summary="Every model: task, versions with committed epochs, last activity, latest result")
def list_models(ctx: Context) -> dict:
    return {"models": model_overview(ctx.store)}
