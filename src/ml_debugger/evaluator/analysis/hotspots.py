"""Hotspot clusters: dense clusters of errors in the feature embedding.

For each dataset and epoch the misclassified units are clustered with HDBSCAN (density based: it
needs no number of clusters and leaves isolated errors as noise). When there are more than
``max_cluster_points`` errors, a random sample of that size is clustered. Every other unit of the
same dataset and epoch (the errors left out of the sample, and the correct units) then joins the
cluster of its nearest clustered error if it lies within that error's core distance (the distance
to its ``cluster_min_samples``-th nearest clustered error, HDBSCAN's own density scale): that is
the cluster's *region*. A cluster is kept only when at least ``hotspot_min_error_rate`` of the
units in its region are errors; a dense pile of errors that merely follows dense data (a low error
rate) is not a hotspot.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from sklearn.cluster import HDBSCAN
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
        table: per-unit rows with ``input_id, dataset, epoch, label, prediction, correct``.
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
        groups = table.groupby(["dataset", "epoch"], sort=True).indices
        for (dataset, epoch), positions in groups.items():
            local = _cluster_group(embedding[positions], correct[positions], config)
            for members in _ordered_clusters(local, correct[positions], config):
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


def _cluster_group(x: np.ndarray, correct: np.ndarray, config: AnalysisConfig) -> np.ndarray:
    """Cluster label per unit of one dataset and epoch (-1: no cluster), before filtering."""
    labels = np.full(len(x), -1, dtype=np.int64)
    errors = np.flatnonzero(~correct)
    if len(errors) > config.max_cluster_points:
        rng = np.random.default_rng(config.random_state)
        sampled = np.sort(rng.choice(errors, size=config.max_cluster_points, replace=False))
    else:
        sampled = errors
    min_size = max(config.min_cluster_size, math.ceil(config.min_cluster_fraction * len(sampled)))
    if len(sampled) < max(min_size, config.cluster_min_samples + 1):
        return labels
    points = x[sampled].astype(np.float64)
    sample_labels = HDBSCAN(
        min_cluster_size=min_size, min_samples=config.cluster_min_samples, copy=False
    ).fit_predict(points)
    clustered = sample_labels >= 0
    if not clustered.any():
        return labels
    labels[sampled] = sample_labels
    # Core distance of each clustered error among the clustered errors.
    anchors = points[clustered]
    anchor_labels = sample_labels[clustered]
    k = min(config.cluster_min_samples, len(anchors) - 1)
    index = NearestNeighbors().fit(anchors)
    core = index.kneighbors(anchors, n_neighbors=k + 1)[0][:, -1] if k > 0 else np.zeros(len(anchors))
    # Every other unit joins its nearest clustered error's cluster when inside its core distance.
    others = np.setdiff1d(np.arange(len(x)), sampled)
    if len(others):
        dist, nearest = index.kneighbors(x[others].astype(np.float64), n_neighbors=1)
        inside = dist[:, 0] <= core[nearest[:, 0]]
        labels[others[inside]] = anchor_labels[nearest[inside, 0]]
    return labels


def _ordered_clusters(
    labels: np.ndarray, correct: np.ndarray, config: AnalysisConfig
) -> list[np.ndarray]:
    """Members of each cluster whose region's error rate is high enough, most errors first."""
    kept = []
    for label in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == label)
        if (~correct[members]).mean() >= config.hotspot_min_error_rate:
            kept.append(members)
    return sorted(kept, key=lambda m: (-int((~correct[m]).sum()), int(m[0])))


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
