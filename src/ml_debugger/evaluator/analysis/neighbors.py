"""Feature-space signals: a reduced embedding and k-nearest-neighbour statistics per group."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

logger = logging.getLogger(__name__)

NEIGHBOR_COLUMNS = (
    "knn_error_rate",
    "knn_label_agreement",
    "knn_distance",
    "coverage_percentile",
    "reference_margin",
)
PCA_FIT_ROWS = 20_000
"""The PCA axes are fitted on at most this many randomly chosen units, then applied to all."""
MAX_POOL = 20_000
"""Neighbours are searched among at most this many units of a group (a seeded random sample)."""


def reduce_features(features: np.ndarray, n_components: int, random_state: int = 0) -> np.ndarray:
    """Centre the features, then project them on their top ``n_components`` principal axes.

    Features are not scaled one by one: that would blow up near-constant (e.g. dead ReLU)
    dimensions into noise that dominates neighbour distances. The projection only happens when
    there are more features and more units than ``n_components``; the axes are fitted with
    randomized SVD on at most ``PCA_FIT_ROWS`` units. Returns float32 ``(n, m)``.
    """
    x = np.asarray(features, dtype=np.float32)
    if len(x) == 0:
        return x
    x = x - x.mean(axis=0, dtype=np.float64).astype(np.float32)
    n, d = x.shape
    if d <= n_components or n <= n_components:
        return x
    rng = np.random.default_rng(random_state)
    fit_rows = x if n <= PCA_FIT_ROWS else x[np.sort(rng.choice(n, PCA_FIT_ROWS, replace=False))]
    # One BLAS thread: the fit is small, and spinning BLAS threads slow down badly (x5 measured)
    # when the cores are shared with other work.
    with threadpool_limits(limits=1, user_api="blas"):
        pca = PCA(n_components, svd_solver="randomized", random_state=random_state).fit(fit_rows)
    return pca.transform(x).astype(np.float32, copy=False)


def neighbor_signals(
    embedding: np.ndarray,
    samples: pd.DataFrame,
    correct: np.ndarray,
    margin: np.ndarray | None = None,
    *,
    reference_dataset: str,
    k_neighbors: int,
    max_pool: int = MAX_POOL,
    random_state: int = 0,
    on_group: Callable[[], None] | None = None,
) -> pd.DataFrame:
    """Return the ``NEIGHBOR_COLUMNS`` of every unit, computed per ``(dataset, epoch)`` group.

    ``knn_error_rate`` / ``knn_label_agreement``: share of the unit's ``k`` nearest neighbours in
    its own group (itself excluded) that are misclassified / carry the unit's label.
    ``knn_distance``: mean Euclidean distance to the ``k`` nearest units of the reference split at
    the same epoch (itself excluded when it belongs to it). ``coverage_percentile``: percentile of
    ``knn_distance`` among the reference units' own leave-one-out distances (as
    ``scipy.stats.percentileofscore(kind="mean")``; 100 = farther than every reference unit).
    ``reference_margin``: mean ``margin`` (top-1 minus top-2 probability) of those ``k`` nearest
    reference units: how decisively the model classifies the training data around the unit,
    whatever their labels say (NaN when no ``margin`` is given: tasks without class probabilities).
    Without a reference split at that epoch, the unit's own group plays the reference. ``k`` is
    capped at the group (reference) size minus one. A lone unit has no neighbours in its group
    (NaN), but a distance to the reference when there is one. In a group larger
    than ``max_pool``, neighbours are searched among a random sample of ``max_pool`` of its units
    (exact brute force on that sample), which bounds the cost at ``n * max_pool`` distances.
    ``on_group`` is called after each group (for a progress bar).
    """
    n = len(samples)
    columns = {name: np.full(n, np.nan) for name in NEIGHBOR_COLUMNS}
    labels = samples["label"].to_numpy(dtype=np.int64)
    error = ~np.asarray(correct, dtype=bool)
    groups = samples.groupby(["dataset", "epoch"], sort=True).indices
    rng = np.random.default_rng(random_state)

    def build(rows: np.ndarray) -> _Pool:
        return _Pool(embedding[rows], k_neighbors, max_pool, rng)

    references = {
        epoch: (rows, build(rows))
        for (dataset, epoch), rows in groups.items()
        if dataset == reference_dataset and len(rows) > 1
    }
    for (dataset, epoch), rows in groups.items():
        reference_rows, reference = references.get(epoch, (rows, None))
        own = reference if dataset == reference_dataset else build(rows) if len(rows) > 1 else None
        if own is not None:
            agree = labels[rows][own.neighbors] == labels[rows, None]
            columns["knn_error_rate"][rows] = error[rows][own.neighbors].mean(axis=1)
            columns["knn_label_agreement"][rows] = agree.mean(axis=1)
        if reference is None and own is not None:
            logger.info("no %r split at epoch %s: %r is its own coverage reference",
                        reference_dataset, epoch, dataset)
            reference = own
        if reference is not None:
            if reference is own:
                distance, neighbors = own.distances, own.neighbors
            else:
                distance, neighbors = reference.query(embedding[rows])
            columns["knn_distance"][rows] = distance
            columns["coverage_percentile"][rows] = reference.percentile(distance)
            if margin is not None:
                columns["reference_margin"][rows] = margin[reference_rows][neighbors].mean(axis=1)
        if on_group is not None:
            on_group()
    return pd.DataFrame(columns, index=samples.index)


KD_TREE_MAX_DIM = 15
"""Up to this many dimensions neighbours are searched in a k-d tree, above by brute force (as
scikit-learn's ``algorithm="auto"`` chooses)."""


class NeighborIndex:
    """Exact Euclidean k-nearest-neighbour search over ``points``.

    Low-dimensional points (box geometry, a few signals) go into scipy's ``cKDTree``, which
    answers the same queries as scikit-learn's k-d tree 2-3x faster; others into scikit-learn's
    brute-force ``NearestNeighbors`` (BLAS). Distances are float64; ties in distance may be
    ordered differently by the two.
    """

    def __init__(self, points: np.ndarray) -> None:
        self.tree = None
        if points.shape[1] <= KD_TREE_MAX_DIM:
            # Sliding-midpoint splits: 2x faster queries than median splits on box geometry (measured).
            self.tree = cKDTree(np.asarray(points, dtype=np.float64), balanced_tree=False)
        else:
            self.index = NearestNeighbors(algorithm="brute").fit(points)

    def kneighbors(self, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(len(points), k)`` distances and positions of the ``k`` nearest points, nearest first."""
        if self.tree is None:
            return self.index.kneighbors(points, n_neighbors=k)
        distance, neighbors = self.tree.query(np.asarray(points, dtype=np.float64), k=list(range(1, k + 1)))
        return distance, neighbors.astype(np.int64, copy=False)


class _Pool:
    """Nearest-neighbour search over one group, with each unit's leave-one-out neighbours.

    Attributes:
        k: neighbours per query (``k_neighbors`` capped at the pool size minus one).
        neighbors: ``(n, k)`` row positions (within the group) of each unit's neighbours.
        distances: ``(n,)`` mean distance of each unit to its ``k`` neighbours.
    """

    def __init__(
        self, points: np.ndarray, k_neighbors: int, max_pool: int, rng: np.random.Generator
    ):
        n = len(points)
        sample = n > max_pool
        self.pool = np.sort(rng.choice(n, max_pool, replace=False)) if sample else np.arange(n)
        self.k = min(k_neighbors, len(self.pool) - 1)
        self.index = NeighborIndex(points[self.pool])
        distance, neighbors = self.index.kneighbors(points, self.k + 1)
        neighbors = self.pool[neighbors]
        drop = neighbors == np.arange(n)[:, None]
        drop[~drop.any(axis=1), -1] = True  # not found as its own neighbour: drop the farthest
        keep = ~drop
        self.neighbors = neighbors[keep].reshape(n, self.k)
        self.distances = distance[keep].reshape(n, self.k).mean(axis=1)
        self.sorted_distances = np.sort(self.distances)

    def query(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean distance of each point to its ``k`` nearest units of the group, and their
        ``(len(points), k)`` row positions within the group."""
        distance, neighbors = self.index.kneighbors(points, self.k)
        return distance.mean(axis=1), self.pool[neighbors]

    def percentile(self, distance: np.ndarray) -> np.ndarray:
        """Percentile of each distance among the group's own leave-one-out distances."""
        below = np.searchsorted(self.sorted_distances, distance, side="left")
        at_or_below = np.searchsorted(self.sorted_distances, distance, side="right")
        return 50.0 * (below + at_or_below) / len(self.sorted_distances)


def embed_per_epoch(features: np.ndarray, samples: pd.DataFrame, n_components: int, random_state: int) -> np.ndarray:
    """Reduce each epoch's features on their own: every epoch's model has its own feature space.

    Epochs whose reduction keeps fewer dimensions are zero-padded, which leaves distances unchanged.
    """
    parts = {
        epoch: reduce_features(features[rows], n_components, random_state)
        for epoch, rows in samples.groupby("epoch", sort=True).indices.items()
    }
    width = max((part.shape[1] for part in parts.values()), default=min(n_components, features.shape[1]))
    embedding = np.zeros((len(samples), width), dtype=np.float32)
    for epoch, rows in samples.groupby("epoch", sort=True).indices.items():
        embedding[rows, : parts[epoch].shape[1]] = parts[epoch]
    return embedding
