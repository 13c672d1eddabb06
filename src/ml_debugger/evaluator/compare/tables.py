"""The tables of a comparison, built from the matched units of the two sides (see ``units``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_debugger.evaluator.compare.units import CONFIDENCE_COLUMNS, Side

CHANGES = ("newly_broken", "still_wrong", "fixed")  # the per-unit table's order; "still_correct" is left out
RATIO_SUFFIX = "_ratio"


def _codes_list(value: object) -> list[str]:
    return [] if value is None or isinstance(value, float) else [str(c) for c in value]


def classify_changes(merged: pd.DataFrame) -> pd.DataFrame:
    """``merged`` with ``change`` (fixed, newly_broken, still_wrong, still_correct; empty for units on
    one side only) and ``input_changed`` (both sides have a non-empty input hash and they differ)."""
    both = merged["side"] == "both"
    was, now = (merged[f"{side}_correct"].fillna(False).astype(bool) for side in ("baseline", "candidate"))
    change = np.select([was & now, ~was & now, was & ~now], ["still_correct", "fixed", "newly_broken"], "still_wrong")
    merged = merged.assign(change=pd.Series(change, index=merged.index).where(both))
    if "baseline_input_hash" in merged.columns and "candidate_input_hash" in merged.columns:
        old, new = merged["baseline_input_hash"].fillna(""), merged["candidate_input_hash"].fillna("")
        merged["input_changed"] = both & (old != "") & (new != "") & (old != new)
    else:
        merged["input_changed"] = False
    return merged


def overview(merged: pd.DataFrame, baseline: Side, candidate: Side) -> pd.DataFrame:
    """One row per dataset: the epochs compared and how many units matched, changed, or are on one side."""
    rows = []
    for dataset in sorted(set(baseline.epochs) | set(candidate.epochs)):
        part = merged[merged["dataset"] == dataset]
        side, change = part["side"].value_counts(), part["change"].value_counts()
        rows.append({
            "dataset": dataset,
            "baseline_epoch": baseline.epochs.get(dataset),
            "candidate_epoch": candidate.epochs.get(dataset),
            "baseline_units": int(side.get("both", 0) + side.get("baseline_only", 0)),
            "candidate_units": int(side.get("both", 0) + side.get("candidate_only", 0)),
            "matched": int(side.get("both", 0)),
            "baseline_only": int(side.get("baseline_only", 0)),
            "candidate_only": int(side.get("candidate_only", 0)),
            **{name: int(change.get(name, 0)) for name in ("fixed", "newly_broken", "still_wrong", "still_correct")},
            "input_changed": int(part["input_changed"].sum()),
        })
    table = pd.DataFrame(rows)
    for column in ("baseline_epoch", "candidate_epoch"):
        table[column] = table[column].astype("Int64")
    return table


def metrics(baseline: Side, candidate: Side) -> pd.DataFrame:
    """Every metric of ``metrics_summary()`` side by side per dataset: baseline, candidate, delta."""
    long = []
    order: list[str] = []
    for name, side in (("baseline", baseline), ("candidate", candidate)):
        table = side.result.metrics_summary(by_epoch=True)
        table = table[table["dataset"].map(side.epochs) == table["epoch"]]
        values = table.drop(columns="epoch").set_index("dataset").select_dtypes("number")
        order += [c for c in values.columns if c not in order]
        long.append(values.rename_axis(columns="metric").stack().rename(name).astype(float))
    table = pd.concat(long, axis=1).reset_index()
    table["delta"] = table["candidate"] - table["baseline"]
    table["_order"] = table["metric"].map({m: i for i, m in enumerate(order)})
    return table.sort_values(["dataset", "_order"]).drop(columns="_order").reset_index(drop=True)


def _category_names(side: Side) -> list[str]:
    columns = side.result.tables.get("categories", pd.DataFrame()).columns
    return [c[: -len(RATIO_SUFFIX)] for c in columns if c.endswith(RATIO_SUFFIX)]


def categories(baseline: Side, candidate: Side) -> pd.DataFrame:
    """Per dataset and issue category: units and share of units on each side, and the share's delta."""
    names = list(dict.fromkeys([*_category_names(baseline), *_category_names(candidate),
                                *baseline.units["category"], *candidate.units["category"]]))
    datasets = sorted(set(baseline.epochs) | set(candidate.epochs))
    index = pd.MultiIndex.from_product([datasets, names], names=["dataset", "category"])
    table = pd.DataFrame(index=index)
    for name, side in (("baseline", baseline), ("candidate", candidate)):
        counts = side.units.groupby(["dataset", "category"]).size().reindex(index, fill_value=0)
        totals = side.units.groupby("dataset").size().reindex(datasets)
        table[f"{name}_count"] = counts
        table[f"{name}_ratio"] = counts / counts.index.get_level_values("dataset").map(totals).to_numpy()
    table["delta"] = table["candidate_ratio"] - table["baseline_ratio"]
    return table.reset_index()


def transitions(merged: pd.DataFrame) -> pd.DataFrame:
    """How the units on both sides moved between issue categories: dataset, baseline_category,
    candidate_category, count (non-zero cells only)."""
    both = merged[merged["side"] == "both"]
    cells = both.groupby(["dataset", "baseline_category", "candidate_category"]).size().rename("count")
    cells = cells.reset_index().sort_values(["dataset", "count"], ascending=[True, False], kind="stable")
    return cells.reset_index(drop=True)


def _confidence(table: pd.DataFrame, side: str) -> pd.Series:
    """The side's ``confidence`` (or ``score``, for a task without one) of each unit; NaN without either."""
    for name in CONFIDENCE_COLUMNS:
        if f"{side}_{name}" in table.columns:
            return pd.to_numeric(table[f"{side}_{name}"], errors="coerce")
    return pd.Series(np.nan, index=table.index)


def changes(merged: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """The matched units whose outcome is not correct on both sides: newly broken first (most confident
    new error first), then still wrong (likewise), then fixed (most confident old error first)."""
    table = merged[merged["change"].isin(CHANGES)].copy()
    confidence = _confidence(table, "candidate").where(table["change"] != "fixed", _confidence(table, "baseline"))
    table["_rank"] = table["change"].map({c: i for i, c in enumerate(CHANGES)})
    table["_confidence"] = -confidence
    ids = ["dataset", *key]
    table = table.sort_values(["_rank", "_confidence", *ids], na_position="last", kind="stable")
    sides = [c for c in table.columns if c.startswith(("baseline_", "candidate_"))
             and not c.endswith(("_correct", "_input_hash"))]
    return table[[*ids, "change", *sides, "input_changed"]].reset_index(drop=True)


def one_side(merged: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Units present on one side only: dataset, key, side, and their outcome on that side."""
    table = merged[merged["side"] != "both"]
    out = table[["dataset", *key, "side"]].copy()
    for column in ("correct", "category", "confidence"):
        if f"baseline_{column}" in table.columns:
            baseline_only = table["side"] == "baseline_only"
            out[column] = table[f"baseline_{column}"].where(baseline_only, table[f"candidate_{column}"])
    return out.reset_index(drop=True)


def input_changes(merged: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Matched units whose input hash differs: the same id now names different data."""
    table = merged[merged["input_changed"]]
    hashes = [c for c in ("baseline_input_hash", "candidate_input_hash") if c in table.columns]
    return table[["dataset", *key, *hashes]].reset_index(drop=True)


def codes(baseline: Side, candidate: Side) -> pd.DataFrame:
    """Per dataset and error code: units carrying it and their share on each side, the change, and a
    status (appeared, disappeared, grew, shrank, unchanged)."""
    counts = []
    for name, side in (("baseline", baseline), ("candidate", candidate)):
        codes = side.units["error_codes"].map(lambda c: sorted(set(_codes_list(c))))
        exploded = side.units[["dataset"]].assign(code=codes).explode("code").dropna(subset=["code"])
        count = exploded.groupby(["dataset", "code"]).size().rename(f"{name}_count")
        ratio = count / count.index.get_level_values("dataset").map(side.units.groupby("dataset").size()).to_numpy()
        counts += [count, ratio.rename(f"{name}_ratio")]
    table = pd.concat(counts, axis=1).fillna(0.0)
    if table.empty:
        table = pd.DataFrame(columns=["baseline_count", "baseline_ratio", "candidate_count", "candidate_ratio"],
                             index=pd.MultiIndex.from_tuples([], names=["dataset", "code"]))
    for name in ("baseline_count", "candidate_count"):
        table[name] = table[name].astype(int)
    table = table.reset_index()
    no_catalog = pd.DataFrame(columns=["code", "name"])
    catalog = pd.concat([s.result.tables.get("codes", no_catalog) for s in (candidate, baseline)])
    names = catalog.drop_duplicates("code").set_index("code")["name"]
    table.insert(2, "name", table["code"].map(names).fillna(""))
    table["delta"] = table["candidate_count"] - table["baseline_count"]
    table["status"] = np.select(
        [table["baseline_count"] == 0, table["candidate_count"] == 0, table["delta"] > 0, table["delta"] < 0],
        ["appeared", "disappeared", "grew", "shrank"], "unchanged",
    )
    table = table[["dataset", "code", "name", "baseline_count", "candidate_count", "delta",
                   "baseline_ratio", "candidate_ratio", "status"]]
    order = table["delta"].abs()
    return table.assign(_o=-order).sort_values(["dataset", "_o", "code"]).drop(columns="_o").reset_index(drop=True)
