"""Hotspot clusters of two results matched by their members.

A cluster's members are the units whose ``hotspot_cluster`` names it (its errors and the correct
units in its region). Within each dataset, a baseline and a candidate cluster are compared by the
Jaccard index of their member sets (units matched as in ``units``); pairs are taken highest index
first, each cluster in at most one pair, down to ``min_jaccard``. A baseline cluster left without
a pair disappeared, a candidate cluster left without one appeared; a paired cluster grew, shrank
or is unchanged by its number of errors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_debugger.evaluator.compare.units import Side

DEFAULT_MIN_JACCARD = 0.1
CLUSTER = "hotspot_cluster"
COLUMNS = ["dataset", "status", "baseline_cluster", "candidate_cluster", "jaccard", "shared_units",
           "baseline_size", "candidate_size", "baseline_errors", "candidate_errors", "errors_delta"]


def _clusters(side: Side) -> pd.DataFrame:
    """dataset, cluster, size, errors of every cluster among the side's units."""
    units = side.units[side.units[CLUSTER].notna()]
    grouped = units.assign(error=~units["correct"].astype(bool)).groupby(["dataset", CLUSTER])
    table = grouped.agg(size=("error", "size"), errors=("error", "sum")).reset_index()
    return table.rename(columns={CLUSTER: "cluster"}).astype({"cluster": int, "size": int, "errors": int})


def _pairs(merged: pd.DataFrame, baseline: pd.DataFrame, candidate: pd.DataFrame, min_jaccard: float) -> pd.DataFrame:
    """Greedy one-to-one pairs of clusters by decreasing Jaccard index, at least ``min_jaccard``."""
    both = merged[merged["side"] == "both"].rename(
        columns={f"baseline_{CLUSTER}": "baseline_cluster", f"candidate_{CLUSTER}": "candidate_cluster"})
    both = both.dropna(subset=["baseline_cluster", "candidate_cluster"])
    shared = both.groupby(["dataset", "baseline_cluster", "candidate_cluster"]).size().rename("shared_units")
    shared = shared.reset_index()
    shared = shared.astype({"baseline_cluster": int, "candidate_cluster": int})
    sizes_b = baseline.set_index(["dataset", "cluster"])["size"]
    sizes_c = candidate.set_index(["dataset", "cluster"])["size"]
    union = (
        sizes_b.reindex(pd.MultiIndex.from_frame(shared[["dataset", "baseline_cluster"]])).to_numpy()
        + sizes_c.reindex(pd.MultiIndex.from_frame(shared[["dataset", "candidate_cluster"]])).to_numpy()
        - shared["shared_units"].to_numpy()
    )
    shared["jaccard"] = shared["shared_units"].to_numpy() / union
    ranked = shared[shared["jaccard"] >= min_jaccard].sort_values(
        ["jaccard", "dataset", "baseline_cluster", "candidate_cluster"], ascending=[False, True, True, True]
    )
    taken_b: set[tuple[str, int]] = set()
    taken_c: set[tuple[str, int]] = set()
    keep = []
    for row in ranked.itertuples(index=False):
        b, c = (row.dataset, row.baseline_cluster), (row.dataset, row.candidate_cluster)
        if b not in taken_b and c not in taken_c:
            taken_b.add(b)
            taken_c.add(c)
            keep.append(row._asdict())
    return pd.DataFrame(keep, columns=["dataset", "baseline_cluster", "candidate_cluster", "shared_units", "jaccard"])


def _describe(side: Side) -> pd.DataFrame:
    """The task's ``dominant_*`` descriptions of each cluster of the side, by cluster id."""
    table = side.result.tables.get("hotspots", pd.DataFrame())
    columns = [c for c in table.columns if c.startswith("dominant_")]
    if "cluster_id" not in table.columns:
        return pd.DataFrame(columns=columns)
    return table.set_index(table["cluster_id"].astype(int))[columns]


def hotspots(
    merged: pd.DataFrame, baseline: Side, candidate: Side, min_jaccard: float = DEFAULT_MIN_JACCARD
) -> pd.DataFrame:
    """Every cluster of either side, paired where their members overlap (see the module's docstring)."""
    if CLUSTER not in baseline.units.columns or CLUSTER not in candidate.units.columns:
        return pd.DataFrame(columns=COLUMNS)
    clusters_b, clusters_c = _clusters(baseline), _clusters(candidate)
    pairs = _pairs(merged, clusters_b, clusters_c, min_jaccard)
    table = pairs.merge(clusters_b.add_prefix("baseline_").rename(columns={"baseline_dataset": "dataset"}),
                        on=["dataset", "baseline_cluster"], how="outer")
    table = table.merge(clusters_c.add_prefix("candidate_").rename(columns={"candidate_dataset": "dataset"}),
                        on=["dataset", "candidate_cluster"], how="outer")
    for column in ("baseline_cluster", "candidate_cluster", "shared_units", "baseline_size", "candidate_size",
                   "baseline_errors", "candidate_errors"):
        table[column] = table[column].astype("Int64")
    for column in ("shared_units", "baseline_size", "candidate_size", "baseline_errors", "candidate_errors"):
        table[column] = table[column].fillna(0)
    table["jaccard"] = table["jaccard"].astype(float).fillna(0.0)
    table["errors_delta"] = table["candidate_errors"] - table["baseline_errors"]
    table["status"] = np.select(
        [table["baseline_cluster"].isna(), table["candidate_cluster"].isna(), table["errors_delta"] > 0,
         table["errors_delta"] < 0],
        ["appeared", "disappeared", "grew", "shrank"], "unchanged",
    )
    table = table[COLUMNS].reset_index(drop=True)
    described = {"candidate_cluster": _describe(candidate), "baseline_cluster": _describe(baseline)}
    for column in dict.fromkeys(c for d in described.values() for c in d.columns):
        values = pd.Series([None] * len(table), index=table.index, dtype=object)
        for ids, description in described.items():  # the candidate's description first
            if column in description.columns:
                values = values.where(values.notna(), table[ids].map(description[column]))
        table[column] = values
    order = table["status"].map({"appeared": 0, "grew": 1, "unchanged": 2, "shrank": 3, "disappeared": 4})
    return (table.assign(_o=order, _e=-table["errors_delta"].abs()).sort_values(["dataset", "_o", "_e"])
            .drop(columns=["_o", "_e"]).reset_index(drop=True))
