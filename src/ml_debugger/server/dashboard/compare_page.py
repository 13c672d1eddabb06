"""Page data of Compare: two or more results side by side, the oldest one as the baseline.

Each other result is compared with the baseline by ``ml_debugger.evaluator.compare.compare_results``
(units matched by dataset and ``input_id``, plus ``unit_id`` for tasks whose units are parts of an
input); this module only arranges its tables for the page.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from ml_debugger.evaluator.compare import Comparison, InputChangedWarning, compare_results
from ml_debugger.evaluator.result import Result
from ml_debugger.exceptions import ConfigurationError
from ml_debugger.server.dashboard import figures
from ml_debugger.server.dashboard.evaluation import PREFERRED_DATASETS, records
from ml_debugger.server.dashboard.results import SAMPLES, ResultReader, ResultRef
from ml_debugger.server.routes_catalog import model_overview

MAX_RESULTS = 6
MAX_LISTED = 50
LOWER_IS_BETTER = ("loss", "entropy", "mate", "mase", "maoe", "mave", "maae")
"""Metrics that improve when they fall: losses, entropies, nuScenes' mean TP errors (a name that
contains one of these); sizes (``NEUTRAL``) have no direction, every other metric rises to improve."""
NEUTRAL = ("counts", "objects", "predictions")
UNIT_LIST_DROP = ("dataset", "change", "input_changed")


def direction(metric: str) -> int:
    """+1 if higher is better, -1 if lower is better, 0 if neither."""
    if metric in NEUTRAL:
        return 0
    return -1 if any(word in metric for word in LOWER_IS_BETTER) else 1


def with_samples(reader: ResultReader, ref: ResultRef) -> Result:
    """The result with its samples table (binary columns left out)."""
    source = reader.samples(ref)
    result = reader.result(ref)
    return Result(result.meta, {**result.tables, SAMPLES: source.read(source.columns).to_pandas()})


@dataclass
class CompareView:
    refs: list[ResultRef]
    dataset: str | None
    datasets: list[str]
    metrics: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    shift: figures.Figure | None
    others: list[dict[str, Any]]
    choices: list[dict[str, Any]]


def _wide(parts: list[pd.DataFrame], key: str, baseline: str, value: str) -> list[dict[str, Any]]:
    """Rows ``dataset, name, baseline, values: [{value, delta, better}]``, one value per comparison."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for i, part in enumerate(parts):
        for row in part.to_dict(orient="records"):
            name = row[key]
            entry = rows.setdefault((row["dataset"], name), {
                "dataset": row["dataset"], "name": name, "baseline": row[baseline], "values": [None] * len(parts),
            })
            sign = direction(name) if key == "metric" else 0
            entry["values"][i] = {"value": row[value], "delta": row["delta"], "better": sign * row["delta"]}
    return sorted(rows.values(), key=lambda row: row["dataset"])  # stable: a dataset's rows keep their order


def choices(reader: ResultReader) -> list[dict[str, Any]]:
    """Every stored result, newest first, for the picker."""
    options = []
    for model in model_overview(reader.store, headlines=False):
        for version in model["versions"]:
            for meta in reader.store.catalog.results(model["name"], version["name"]):
                ref = ResultRef(model["name"], version["name"], meta["result_name"])
                options.append({"ref": str(ref), "created_at": meta["created_at"], "task": model["task"],
                                "epochs": meta.get("epochs", [])})
    return sorted(options, key=lambda o: o["created_at"], reverse=True)


def _units(table: pd.DataFrame) -> dict[str, Any]:
    return {"total": len(table), "rows": records(table.head(MAX_LISTED)),
            "columns": [c for c in table.columns if c not in UNIT_LIST_DROP]}


def _against(baseline: ResultRef, ref: ResultRef, comparison: Comparison, dataset: str | None) -> dict[str, Any]:
    """What the page shows of one comparison, for ``dataset``."""
    def at(table: pd.DataFrame) -> pd.DataFrame:
        return table[table["dataset"] == dataset]

    overview = at(comparison.overview())
    transitions = at(comparison.transitions())
    codes = at(comparison.codes())
    hotspots = at(comparison.hotspots())
    return {
        "ref": ref, "notes": comparison.notes, "overview": records(overview.drop(columns="dataset")),
        "broken": _units(at(comparison.newly_broken())), "fixed": _units(at(comparison.fixed())),
        "codes": records(codes[codes["status"] != "unchanged"].drop(columns="dataset")),
        "hotspots": records(hotspots.drop(columns="dataset")), "hotspot_columns": [
            c for c in hotspots.columns if c != "dataset"],
        "transitions": None if transitions.empty else figures.heatmap_figure(
            transitions, dataset=dataset, epoch=None, filters={}),
        "baseline": baseline,
    }


def compare_view(reader: ResultReader, refs: list[ResultRef], dataset: str | None) -> CompareView:
    if len(refs) > MAX_RESULTS:
        raise ConfigurationError(f"compare at most {MAX_RESULTS} results at once; got {len(refs)}")
    if len(refs) < 2:
        return CompareView(refs, None, [], [], [], None, [], choices(reader))
    refs = sorted(refs, key=lambda ref: datetime.fromisoformat(reader.result(ref).meta["created_at"]))
    results = [with_samples(reader, ref) for ref in refs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputChangedWarning)  # the comparison's notes say it too
        comparisons = [compare_results(results[0], other) for other in results[1:]]
    datasets = sorted(set.intersection(*(set(c.overview()["dataset"]) for c in comparisons)))
    if dataset is None or dataset not in datasets:
        dataset = next((d for d in PREFERRED_DATASETS if d in datasets), datasets[0] if datasets else None)
    first = comparisons[0].categories()
    shares = pd.concat(
        [first.assign(result=str(refs[0]), share=first["baseline_ratio"])]
        + [c.categories().assign(result=str(ref), share=lambda f: f["candidate_ratio"])
           for ref, c in zip(refs[1:], comparisons, strict=True)],
        ignore_index=True,
    )
    return CompareView(
        refs=refs, dataset=dataset, datasets=datasets,
        metrics=_wide([c.metrics() for c in comparisons], "metric", "baseline", "candidate"),
        categories=_wide([c.categories() for c in comparisons], "category", "baseline_ratio", "candidate_ratio"),
        shift=figures.category_shift(shares[shares["dataset"] == dataset]),
        others=[_against(refs[0], ref, c, dataset) for ref, c in zip(refs[1:], comparisons, strict=True)],
        choices=choices(reader),
    )
