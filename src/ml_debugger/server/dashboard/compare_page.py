"""Page data of Compare: two or more results side by side, the oldest one as the baseline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from ml_debugger.evaluator.result import Result
from ml_debugger.exceptions import ConfigurationError
from ml_debugger.server.dashboard import figures
from ml_debugger.server.dashboard.compare import Comparison, compare_results
from ml_debugger.server.dashboard.evaluation import PREFERRED_DATASETS, records
from ml_debugger.server.dashboard.results import SAMPLES, ResultReader, ResultRef
from ml_debugger.server.dashboard.samples import class_column, prediction_column
from ml_debugger.server.routes_catalog import model_overview

MAX_RESULTS = 6
MAX_LISTED_UNITS = 50
LOWER_IS_BETTER = ("loss", "entropy")
"""A metric whose name contains one of these improves when it falls; ``counts`` has no direction."""
UNIT_COLUMNS = ("dataset", "epoch", "input_id", "category", "correct", "error_codes")


def direction(metric: str) -> int:
    """+1 if higher is better, -1 if lower is better, 0 if neither."""
    if metric == "counts":
        return 0
    return -1 if any(word in metric for word in LOWER_IS_BETTER) else 1


def with_samples(reader: ResultReader, ref: ResultRef) -> Result:
    """The result with the sample columns a comparison needs."""
    source = reader.samples(ref)
    schema = source.schema
    wanted = [c for c in (*UNIT_COLUMNS, class_column(schema), prediction_column(schema)) if c and c in schema.names]
    samples = source.read(list(dict.fromkeys(wanted))).to_pandas()
    result = reader.result(ref)
    return Result(result.meta, {**result.tables, SAMPLES: samples})


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


def _wide(parts: list[pd.DataFrame], key: str) -> list[dict[str, Any]]:
    """Rows ``dataset, <key>, baseline, values: [(value, delta, better)]`` from each comparison's table."""
    if not parts:
        return []
    rows = {}
    for i, part in enumerate(parts):
        for row in part.itertuples(index=False):
            name = getattr(row, key)
            entry = rows.setdefault((row.dataset, name), {
                "dataset": row.dataset, "name": name, "baseline": row.baseline, "values": [None] * len(parts),
            })
            sign = direction(name) if key == "metric" else 0
            entry["values"][i] = {"value": row.other, "delta": row.delta, "better": sign * row.delta}
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


def compare_view(reader: ResultReader, refs: list[ResultRef], dataset: str | None) -> CompareView:
    if len(refs) > MAX_RESULTS:
        raise ConfigurationError(f"compare at most {MAX_RESULTS} results at once; got {len(refs)}")
    if len(refs) < 2:
        return CompareView(refs, None, [], [], [], None, [], choices(reader))
    refs = sorted(refs, key=lambda ref: datetime.fromisoformat(reader.result(ref).meta["created_at"]))
    results = [with_samples(reader, ref) for ref in refs]
    comparisons: list[Comparison] = [compare_results(results[0], other) for other in results[1:]]
    datasets = sorted(set.intersection(*(set(r.meta.get("datasets", [])) for r in results)))
    if dataset is None or dataset not in datasets:
        dataset = next((d for d in PREFERRED_DATASETS if d in datasets), datasets[0] if datasets else None)
    shares = pd.concat(
        [
            r.issue_category_summary().melt(id_vars="dataset", var_name="category", value_name="share")
            .assign(result=str(ref), category=lambda f: f["category"].str.removesuffix("_ratio"))
            for ref, r in zip(refs, results, strict=True)
        ],
        ignore_index=True,
    )
    others = []
    for ref, comparison in zip(refs[1:], comparisons, strict=True):
        fixed = comparison.fixed[comparison.fixed["dataset"] == dataset]
        broken = comparison.broken[comparison.broken["dataset"] == dataset]
        transitions = comparison.transitions[comparison.transitions["dataset"] == dataset]
        others.append({
            "ref": ref, "fixed_count": len(fixed), "broken_count": len(broken),
            "fixed": records(fixed.head(MAX_LISTED_UNITS)), "broken": records(broken.head(MAX_LISTED_UNITS)),
            "unit_columns": [c for c in fixed.columns if c != "dataset"],
            "transitions": figures.heatmap_figure(transitions, dataset=dataset, epoch=None, filters={})
            if not transitions.empty else None,
        })
    return CompareView(
        refs=refs, dataset=dataset, datasets=datasets,
        metrics=_wide([c.metrics for c in comparisons], "metric"),
        categories=_wide([c.categories for c in comparisons], "category"),
        shift=figures.category_shift(shares[shares["dataset"] == dataset]),
        others=others, choices=choices(reader),
    )
