"""Hotspot clusters: regions of feature space where the model fails far more than elsewhere.

Works on a generic per-unit table (``dataset``, ``epoch``, ``correct``, ``knn_error_rate`` and an
embedding row per unit), so the same machinery serves classification samples and detection
objects. Per dataset and epoch (a *split*), with ``k = k_neighbors`` nearest units of the split:

1. the split's base error rate ``b`` sets the density bar: errors whose ``knn_error_rate`` is at
   least ``dense = max(cluster_error_rate, min_cluster_lift * b)`` are *core* errors (at most
   ``max_cluster_points`` of them, a random sample, are examined); with ``dense > 1`` the split
   has no hotspot (no region can be that much worse than a split that is mostly wrong);
2. core errors that are each among the other's ``k`` nearest units are linked, and the connected
   groups of core errors are the clusters: density-based like DBSCAN, but with density measured
   by the error rate rather than within a radius, so it needs no distance scale and leaves
   sparse, isolated errors out; linking only mutual neighbours keeps a hub (a point that is
   near many others) from chaining unrelated errors together;
3. a core error without any mutual link (an "anti-hub": close to others, but the nearest of
   none, common in high dimension) joins the cluster of its nearest linked neighbour when it
   is as dense as that cluster (its ``k``-th neighbour no farther than the largest such
   distance among the cluster's linked core errors);
4. every other unit among a clustered core error's ``k`` nearest units joins the cluster of its
   nearest such core error: the cluster's *region*; its correct units make its error rate;
5. a cluster is reported only when it is a finding: at least
   ``max(min_cluster_size, min_cluster_fraction * n_errors)`` errors, a ``lift`` (its error
   rate over ``b``) of at least ``min_cluster_lift``, and *specific*: its region holds at most
   ``max_cluster_share`` of the split's units (a region holding most of a split describes the
   model's overall weakness, which the metrics already show).

Reported clusters are ranked latest epoch first, then by ``impact = error_coverage * lift`` (the
share of the split's errors the cluster explains, weighted by how concentrated they are), and
numbered in that order.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ml_debugger.evaluator.analysis.config import AnalysisConfig
from ml_debugger.evaluator.analysis.neighbors import NeighborIndex

logger = logging.getLogger(__name__)

HOTSPOT_COLUMNS = (
    "cluster_id",
    "dataset",
    "epoch",
    "size",
    "unit_share",
    "n_errors",
    "error_rate",
    "base_error_rate",
    "lift",
    "error_coverage",
    "impact",
    "dominant_labels",
    "dominant_confusions",
    "representative_input_ids",
)
DOMINANT_MIN_SHARE = 0.1
"""A label or confusion is dominant when it covers at least this share of a cluster's errors ..."""
MAX_DOMINANT = 3
"""... and is among the cluster's ``MAX_DOMINANT`` most frequent ones."""


def base_error_rates(table: pd.DataFrame) -> np.ndarray:
    """Per unit, the error rate of its split (its dataset at its epoch)."""
    wrong = (~table["correct"].to_numpy(dtype=bool)).astype(np.float64)
    split = table.groupby(["dataset", "epoch"], sort=False).ngroup().to_numpy()
    if len(split) == 0:
        return np.zeros(0)
    return (np.bincount(split, wrong) / np.bincount(split))[split]


def dense_error_rate(table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
    """Per unit, the ``knn_error_rate`` at or above which its neighbourhood is a dense error
    region: ``max(cluster_error_rate, min_cluster_lift * base error rate of its split)``."""
    return np.maximum(config.cluster_error_rate, config.min_cluster_lift * base_error_rates(table))


@dataclass(frozen=True)
class _Cluster:
    """One cluster found in a split: its rows in the table and what ranks it."""

    rows: np.ndarray
    dataset: str
    epoch: int
    stats: dict

    @property
    def rank_key(self) -> tuple:
        return (-self.epoch, -self.stats["impact"], self.dataset, int(self.rows[0]))


def find_hotspots(
    table: pd.DataFrame, embedding: np.ndarray | None, config: AnalysisConfig
) -> tuple[pd.Series, pd.DataFrame]:
    """Find the hotspot clusters of each dataset and epoch.

    Args:
        table: per-unit rows with ``dataset, epoch, correct`` and ``knn_error_rate`` (share of
            errors among the unit's nearest units of its own dataset and epoch in ``embedding``);
            ``input_id, label, prediction`` describe the clusters.
        embedding: ``(len(table), m)`` reduced features, or None (no features: no clusters).
        config: the clustering thresholds.

    Returns:
        ``hotspot_cluster`` (nullable Int64 on ``table.index``: the cluster whose region holds
        the unit, null outside every reported cluster) and the cluster table with
        ``HOTSPOT_COLUMNS``, one row per reported cluster, latest epoch first, then by impact;
        ``cluster_id`` numbers the rows in that order from 0.
    """
    clusters: list[_Cluster] = []
    if embedding is not None and len(table):
        correct = table["correct"].to_numpy(dtype=bool)
        knn_error_rate = table["knn_error_rate"].to_numpy(dtype=np.float64, na_value=np.nan)
        for (dataset, epoch), positions in table.groupby(["dataset", "epoch"], sort=True).indices.items():
            found = _split_clusters(
                embedding[positions], correct[positions], knn_error_rate[positions], config
            )
            logger.debug("%d hotspot clusters in %s epoch %s", len(found), dataset, epoch)
            clusters += [_Cluster(positions[m], str(dataset), int(epoch), s) for m, s in found]
    clusters.sort(key=lambda c: c.rank_key)
    assignment = np.full(len(table), -1, dtype=np.int64)
    rows = []
    for cluster_id, cluster in enumerate(clusters):
        assignment[cluster.rows] = cluster_id
        rows.append(
            {"cluster_id": cluster_id, "dataset": cluster.dataset, "epoch": cluster.epoch}
            | cluster.stats
            | _describe(table, embedding, cluster.rows, config)
        )
    hotspot_cluster = pd.Series(
        assignment, index=table.index, name="hotspot_cluster", dtype="Int64"
    ).mask(assignment < 0)
    return hotspot_cluster, _cluster_frame(rows)


def _split_clusters(
    x: np.ndarray, correct: np.ndarray, knn_error_rate: np.ndarray, config: AnalysisConfig
) -> list[tuple[np.ndarray, dict]]:
    """The reported clusters of one split: member positions and statistics of each."""
    n_errors = int((~correct).sum())
    if n_errors == 0:
        return []
    base = n_errors / len(x)
    labels = _cluster_labels(x, correct, knn_error_rate, config, dense=max(
        config.cluster_error_rate, config.min_cluster_lift * base
    ))
    min_errors = max(config.min_cluster_size, math.ceil(config.min_cluster_fraction * n_errors))
    found = []
    for label in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == label)
        errors = int((~correct[members]).sum())
        error_rate = errors / len(members)
        stats = {
            "size": len(members),
            "unit_share": len(members) / len(x),
            "n_errors": errors,
            "error_rate": error_rate,
            "base_error_rate": base,
            "lift": error_rate / base,
            "error_coverage": errors / n_errors,
            "impact": errors / n_errors * error_rate / base,
        }
        if errors < min_errors or stats["lift"] < config.min_cluster_lift:
            continue
        if stats["unit_share"] > config.max_cluster_share:
            logger.debug("cluster of %d units (%.0f%% of its split) is not specific: dropped",
                         len(members), 100 * stats["unit_share"])
            continue
        found.append((members, stats))
    return found


def _cluster_labels(
    x: np.ndarray,
    correct: np.ndarray,
    knn_error_rate: np.ndarray,
    config: AnalysisConfig,
    dense: float,
) -> np.ndarray:
    """Cluster label per unit of one split (-1: no cluster), before any cluster is filtered."""
    labels = np.full(len(x), -1, dtype=np.int64)
    core = np.flatnonzero(~correct & (knn_error_rate >= dense))
    if len(core) > config.max_cluster_points:
        rng = np.random.default_rng(config.random_state)
        core = np.sort(rng.choice(core, size=config.max_cluster_points, replace=False))
    k = min(config.k_neighbors, len(x) - 1)
    if k < 1 or len(core) < 2:
        return labels
    distances, neighbors = _neighbors_of(x, core, k)
    component, linked = _mutual_components(core, neighbors, len(x))
    labels[core[linked]] = component[linked]
    _attach_anti_hubs(labels, core, distances, neighbors, component, linked)
    _add_regions(labels, core, distances, neighbors)
    return labels
def _mutual_components(
    core: np.ndarray, neighbors: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Connected component of each core error in the graph linking mutual neighbours, and
    whether it has a link at all (mutual links keep a hub, a point near many others, from
    chaining unrelated errors together)."""
    node = np.full(n, -1, dtype=np.int64)
    node[core] = np.arange(len(core))
    src = np.repeat(np.arange(len(core)), neighbors.shape[1])
    dst = node[neighbors.ravel()]
    keep = dst >= 0
    graph = coo_matrix(
        (np.ones(int(keep.sum())), (src[keep], dst[keep])), shape=(len(core), len(core))
    ).tocsr()
    _, component = connected_components(graph.multiply(graph.T), directed=False)
    return component, np.bincount(component)[component] >= 2


def _attach_anti_hubs(
    labels: np.ndarray,
    core: np.ndarray,
    distances: np.ndarray,
    neighbors: np.ndarray,
    component: np.ndarray,
    linked: np.ndarray,
) -> None:
    """A core error without a mutual link (an anti-hub: near others, nearest to none) joins
    the cluster of its nearest linked neighbour if it is as dense as that cluster: its k-th
    neighbour is no farther than the k-th neighbour of some linked core error of the cluster."""
    lone = np.flatnonzero(~linked)
    neighbor_labels = labels[neighbors[lone]]
    nearest = neighbor_labels[np.arange(len(lone)), (neighbor_labels >= 0).argmax(axis=1)]
    radius = np.zeros(int(component.max()) + 1)
    np.maximum.at(radius, component[linked], distances[linked, -1])
    joins = (nearest >= 0) & (distances[lone, -1] <= radius[np.maximum(nearest, 0)])
    labels[core[lone[joins]]] = nearest[joins]


def _add_regions(
    labels: np.ndarray, core: np.ndarray, distances: np.ndarray, neighbors: np.ndarray
) -> None:
    """Every unclustered unit among a clustered core error's neighbours joins the cluster of the
    nearest such core error."""
    owners = np.repeat(labels[core], neighbors.shape[1])
    order = np.argsort(np.where(owners >= 0, distances.ravel(), np.inf), kind="stable")
    members, first = np.unique(neighbors.ravel()[order], return_index=True)
    owners = owners[order][first]
    free = (labels[members] < 0) & (owners >= 0)
    labels[members[free]] = owners[free]


def _neighbors_of(x: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances and positions of the ``k`` nearest other units of each query unit."""
    distances, neighbors = NeighborIndex(x).kneighbors(x[queries], k + 1)
    is_self = neighbors == queries[:, None]
    # Drop the query itself (or, if a duplicate hid it, the farthest neighbour).
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones_like(is_self)
    keep[np.arange(len(queries)), drop] = False
    return distances[keep].reshape(-1, k), neighbors[keep].reshape(-1, k)


def _describe(
    table: pd.DataFrame, embedding: np.ndarray, rows: np.ndarray, config: AnalysisConfig
) -> dict:
    """What a cluster's errors have in common: dominant labels and confusions, representatives."""
    error_rows = rows[~table["correct"].to_numpy(dtype=bool)[rows]]
    labels = table["label"].to_numpy(dtype=np.int64)[error_rows]
    preds = table["prediction"].to_numpy(dtype=np.int64)[error_rows]
    confusions = np.array([f"{a}->{b}" for a, b in zip(labels, preds)], dtype=object)
    points = embedding[error_rows]
    closest = np.argsort(((points - points.mean(axis=0)) ** 2).sum(axis=1), kind="stable")
    ids = table["input_id"].to_numpy(dtype=object)[error_rows[closest[: config.n_representatives]]]
    return {
        "dominant_labels": [int(v) for v in _dominant(labels)],
        "dominant_confusions": [str(v) for v in _dominant(confusions)],
        "representative_input_ids": [str(v) for v in ids],
    }


def _dominant(values: np.ndarray) -> list:
    counts = pd.Series(values).value_counts(sort=False)
    counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
    counts = counts[counts >= DOMINANT_MIN_SHARE * len(values)]
    return list(counts.index[:MAX_DOMINANT])


def _cluster_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(HOTSPOT_COLUMNS))
    floats = ("unit_share", "error_rate", "base_error_rate", "lift", "error_coverage", "impact")
    return frame.astype(
        {
            "cluster_id": np.int64,
            "dataset": str,
            "epoch": np.int64,
            "size": np.int64,
            "n_errors": np.int64,
            **{name: np.float64 for name in floats},
        }
    )
