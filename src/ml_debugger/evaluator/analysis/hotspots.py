"""Hotspot clusters: dense clusters of errors in the feature embedding.

Per dataset and epoch, with ``k = k_neighbors`` nearest units (all units of that dataset and
epoch count as neighbours, as for the ``knn_error_rate`` signal):

1. errors whose local error rate ``knn_error_rate`` is at least ``cluster_error_rate`` are
   *core* errors (at most ``max_cluster_points`` of them, a random sample, are examined);
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
5. clusters with fewer than ``max(min_cluster_size, min_cluster_fraction * n_errors)`` errors
   are dropped (``n_errors``: all errors of that dataset and epoch).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.neighbors import NearestNeighbors

from ml_debugger.evaluator.analysis.config import AnalysisConfig

logger = logging.getLogger(__name__)

HOTSPOT_COLUMNS = (
    "cluster_id",
    "dataset",
    "epoch",
    "size",
    "n_errors",
    "error_rate",
    "error_coverage",
    "dominant_labels",
    "dominant_confusions",
    "representative_input_ids",
)
DOMINANT_MIN_SHARE = 0.1
"""A label or confusion is dominant when it covers at least this share of a cluster's errors ..."""
MAX_DOMINANT = 3
"""... and is among the cluster's ``MAX_DOMINANT`` most frequent ones."""


def find_hotspots(
    table: pd.DataFrame, embedding: np.ndarray | None, config: AnalysisConfig
) -> tuple[pd.Series, pd.DataFrame]:
    """Cluster the errors of each dataset and epoch.

    Args:
        table: per-unit rows with ``input_id, dataset, epoch, label, prediction, correct`` and
            ``knn_error_rate`` (share of errors among the unit's nearest units of its own dataset
            and epoch in ``embedding``, the signal of the same name).
        embedding: ``(len(table), m)`` reduced features, or None (no features: no clusters).
        config: the clustering thresholds.

    Returns:
        ``hotspot_cluster`` (nullable Int64 on ``table.index``: the cluster whose region holds
        the unit, null outside every cluster) and the cluster table with ``HOTSPOT_COLUMNS``,
        one row per cluster, sorted by dataset, epoch and number of errors (largest first);
        ``cluster_id`` counts from 0 across all datasets and epochs.
    """
    assignment = np.full(len(table), -1, dtype=np.int64)
    rows: list[dict] = []
    if embedding is not None and len(table):
        correct = table["correct"].to_numpy(dtype=bool)
        knn_error_rate = table["knn_error_rate"].to_numpy(dtype=np.float64, na_value=np.nan)
        groups = table.groupby(["dataset", "epoch"], sort=True).indices
        for (dataset, epoch), positions in groups.items():
            local = _cluster_group(
                embedding[positions], correct[positions], knn_error_rate[positions], config
            )
            clusters = _ordered_clusters(local, correct[positions])
            logger.debug("%d hotspot clusters in %s epoch %s", len(clusters), dataset, epoch)
            for members in clusters:
                cluster_id = len(rows)
                assignment[positions[members]] = cluster_id
                rows.append(
                    _describe(table, embedding, positions, members, correct, cluster_id, config)
                    | {"dataset": str(dataset), "epoch": int(epoch)}
                )
    hotspot_cluster = pd.Series(
        assignment, index=table.index, name="hotspot_cluster", dtype="Int64"
    ).mask(assignment < 0)
    return hotspot_cluster, _cluster_frame(rows)


def _cluster_group(
    x: np.ndarray, correct: np.ndarray, knn_error_rate: np.ndarray, config: AnalysisConfig
) -> np.ndarray:
    """Cluster label per unit of one dataset and epoch (-1: no cluster)."""
    labels = np.full(len(x), -1, dtype=np.int64)
    min_errors = max(
        config.min_cluster_size, math.ceil(config.min_cluster_fraction * int((~correct).sum()))
    )
    core = np.flatnonzero(~correct & (knn_error_rate >= config.cluster_error_rate))
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
    n_errors = np.bincount(labels[(labels >= 0) & ~correct], minlength=int(component.max()) + 1)
    labels[(labels >= 0) & (n_errors[np.maximum(labels, 0)] < min_errors)] = -1
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
    index = NearestNeighbors(n_neighbors=k + 1).fit(x)
    distances, neighbors = index.kneighbors(x[queries])
    is_self = neighbors == queries[:, None]
    # Drop the query itself (or, if a duplicate hid it, the farthest neighbour).
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones_like(is_self)
    keep[np.arange(len(queries)), drop] = False
    return distances[keep].reshape(-1, k), neighbors[keep].reshape(-1, k)


def _ordered_clusters(labels: np.ndarray, correct: np.ndarray) -> list[np.ndarray]:
    """Members of each cluster, the cluster with the most errors first."""
    clusters = [np.flatnonzero(labels == label) for label in np.unique(labels[labels >= 0])]
    return sorted(clusters, key=lambda m: (-int((~correct[m]).sum()), int(m[0])))


def _describe(
    table: pd.DataFrame,
    embedding: np.ndarray,
    positions: np.ndarray,
    members: np.ndarray,
    correct: np.ndarray,
    cluster_id: int,
    config: AnalysisConfig,
) -> dict:
    rows = positions[members]
    error_rows = rows[~correct[rows]]
    group_errors = int((~correct[positions]).sum())
    labels = table["label"].to_numpy(dtype=np.int64)[error_rows]
    preds = table["prediction"].to_numpy(dtype=np.int64)[error_rows]
    confusions = np.array([f"{a}->{b}" for a, b in zip(labels, preds)], dtype=object)
    points = embedding[error_rows]
    closest = np.argsort(((points - points.mean(axis=0)) ** 2).sum(axis=1), kind="stable")
    ids = table["input_id"].to_numpy(dtype=object)[error_rows[closest[: config.n_representatives]]]
    return {
        "cluster_id": cluster_id,
        "size": len(rows),
        "n_errors": len(error_rows),
        "error_rate": len(error_rows) / len(rows),
        "error_coverage": len(error_rows) / group_errors,
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
    return frame.astype(
        {
            "cluster_id": np.int64,
            "dataset": str,
            "epoch": np.int64,
            "size": np.int64,
            "n_errors": np.int64,
            "error_rate": np.float64,
            "error_coverage": np.float64,
        }
    )
