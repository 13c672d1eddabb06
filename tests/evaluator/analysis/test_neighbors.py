import numpy as np
import pandas as pd
import pytest
from scipy.stats import percentileofscore
from sklearn.metrics import pairwise_distances

from ml_debugger.evaluator.analysis.neighbors import (
    NEIGHBOR_COLUMNS,
    neighbor_signals,
    reduce_features,
)


def _samples(datasets, epochs, labels):
    return pd.DataFrame({"dataset": datasets, "epoch": np.asarray(epochs, dtype=np.int64),
                         "label": np.asarray(labels, dtype=np.int64)})


def _brute(points, queries, k, same):
    """Indices and mean distance of the k nearest points, excluding the query itself if same."""
    d = pairwise_distances(queries, points)
    if same:
        np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :k]
    return nearest, np.take_along_axis(d, nearest, axis=1).mean(axis=1)


def test_reduce_features_centres_and_projects():
    rng = np.random.default_rng(0)
    small = rng.normal(3.0, 5.0, size=(300, 6)).astype(np.float32)
    out = reduce_features(small, n_components=8)
    assert out.dtype == np.float32 and out.shape == (300, 6)
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(out, small - small.mean(0), atol=1e-4)  # centred, not rescaled

    # rank-5 data in 100 dims: 8 components keep every pairwise distance
    low_rank = (rng.normal(size=(400, 5)) @ rng.normal(size=(5, 100))).astype(np.float32)
    reduced = reduce_features(low_rank, n_components=8)
    assert reduced.shape == (400, 8) and reduced.dtype == np.float32
    np.testing.assert_allclose(
        pairwise_distances(reduced[:50]), pairwise_distances(low_rank[:50]), rtol=1e-3, atol=1e-3,
    )


def test_a_near_constant_feature_does_not_dominate_distances():
    rng = np.random.default_rng(1)
    signal = rng.normal(size=(500, 4)).astype(np.float32)
    dead = rng.normal(scale=1e-4, size=(500, 1)).astype(np.float32)  # a dead ReLU unit, slight noise
    reduced = reduce_features(np.hstack([signal, dead]), n_components=8)
    np.testing.assert_allclose(
        pairwise_distances(reduced[:50]), pairwise_distances(signal[:50]), rtol=1e-3, atol=1e-3,
    )


def test_constant_feature_does_not_produce_nan():
    x = np.ones((50, 3), dtype=np.float32)
    x[:, 0] = np.arange(50)
    assert np.isfinite(reduce_features(x, n_components=2)).all()


def test_matches_brute_force_per_dataset_and_epoch():
    rng = np.random.default_rng(1)
    n, k = 240, 5
    datasets = rng.choice(["train", "val", "test"], size=n, p=[0.4, 0.4, 0.2])
    epochs = rng.integers(0, 2, size=n)
    labels = rng.integers(0, 3, size=n)
    correct = rng.random(n) < 0.7
    margin = rng.uniform(-1, 1, n)
    points = rng.normal(size=(n, 4)).astype(np.float32)
    samples = _samples(datasets, epochs, labels)
    out = neighbor_signals(points, samples, correct, margin, reference_dataset="train", k_neighbors=k)
    assert list(out.columns) == list(NEIGHBOR_COLUMNS)
    for epoch in (0, 1):
        ref = np.flatnonzero((datasets == "train") & (epochs == epoch))
        _, ref_loo = _brute(points[ref], points[ref], k, same=True)
        np.testing.assert_allclose(out["knn_distance"].iloc[ref], ref_loo, rtol=1e-5)
        ref_loo = out["knn_distance"].iloc[ref]  # the same values, as computed (no rounding ties)
        for dataset in ("train", "val", "test"):
            rows = np.flatnonzero((datasets == dataset) & (epochs == epoch))
            nearest, _ = _brute(points[rows], points[rows], k, same=True)
            error_rate = (~correct[rows])[nearest].mean(1)
            agreement = (labels[rows][nearest] == labels[rows, None]).mean(1)
            np.testing.assert_allclose(out["knn_error_rate"].iloc[rows], error_rate)
            np.testing.assert_allclose(out["knn_label_agreement"].iloc[rows], agreement)
            nearest_ref, distance = _brute(points[ref], points[rows], k, same=dataset == "train")
            np.testing.assert_allclose(out["knn_distance"].iloc[rows], distance, rtol=1e-5)
            np.testing.assert_allclose(out["reference_margin"].iloc[rows], margin[ref][nearest_ref].mean(1))
            distances = out["knn_distance"].iloc[rows]
            expected = [percentileofscore(ref_loo, d, kind="mean") for d in distances]
            np.testing.assert_allclose(out["coverage_percentile"].iloc[rows], expected)


def test_far_away_inputs_have_high_coverage_percentile():
    rng = np.random.default_rng(2)
    train = rng.normal(size=(300, 5))
    near = rng.normal(size=(100, 5))
    far = rng.normal(size=(40, 5)) + 8.0
    points = np.vstack([train, near, far]).astype(np.float32)
    datasets = ["train"] * 300 + ["val"] * 140
    samples = _samples(datasets, np.zeros(440), np.zeros(440))
    out = neighbor_signals(points, samples, np.ones(440, bool), np.ones(440), reference_dataset="train",
                           k_neighbors=10)
    coverage = out["coverage_percentile"].to_numpy()
    assert (coverage[400:] == 100).all()
    assert 30 < coverage[300:400].mean() < 70  # the same distribution as train: about uniform
    assert 45 < coverage[:300].mean() < 55  # the reference against itself is uniform


def test_without_reference_split_the_split_is_its_own_reference():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(60, 3)).astype(np.float32)
    datasets = ["train"] * 20 + ["val"] * 40
    epochs = [0] * 20 + [1] * 40  # no train at epoch 1
    margin = rng.uniform(-1, 1, 60)
    out = neighbor_signals(points, _samples(datasets, epochs, np.zeros(60)), np.ones(60, bool), margin,
                           reference_dataset="train", k_neighbors=4)
    nearest, loo = _brute(points[20:], points[20:], 4, same=True)
    np.testing.assert_allclose(out["knn_distance"].iloc[20:], loo, rtol=1e-5)
    np.testing.assert_allclose(out["reference_margin"].iloc[20:], margin[20:][nearest].mean(1))
    expected = [percentileofscore(loo, d, kind="mean") for d in loo]
    np.testing.assert_allclose(out["coverage_percentile"].iloc[20:], expected)


def test_tiny_groups_cap_k_and_single_units_get_nan():
    points = np.arange(8, dtype=np.float32).reshape(4, 2)
    samples = _samples(["train", "train", "train", "val"], [0, 0, 0, 0], [0, 1, 1, 0])
    correct = np.array([True, False, True, True])
    out = neighbor_signals(points, samples, correct, np.zeros(4), reference_dataset="train", k_neighbors=10)
    # train has 3 units: each sees the other two
    np.testing.assert_allclose(out["knn_error_rate"].iloc[:3], [0.5, 0.0, 0.5])
    np.testing.assert_allclose(out["knn_label_agreement"].iloc[:3], [0.0, 0.5, 0.5])
    assert out[["knn_error_rate", "knn_label_agreement"]].iloc[3].isna().all()
    # the lone val unit still has a distance to the two nearest train units (k capped at 2)
    d = np.linalg.norm(points[:3] - points[3], axis=1)
    assert out["knn_distance"].iloc[3] == pytest.approx(np.sort(d)[:2].mean())


def test_large_groups_search_a_random_pool():
    rng = np.random.default_rng(4)
    n, k, pool = 400, 5, 100
    points = rng.normal(size=(n, 3)).astype(np.float32)
    correct = rng.random(n) < 0.5
    samples = _samples(["val"] * n, np.zeros(n), rng.integers(0, 2, n))
    out = neighbor_signals(points, samples, correct, np.zeros(n), reference_dataset="train",
                           k_neighbors=k, max_pool=pool, random_state=0)
    exact = neighbor_signals(points, samples, correct, np.zeros(n), reference_dataset="train", k_neighbors=k)
    # distances to a quarter of the units are larger than to all of them, never smaller
    assert (out["knn_distance"] >= exact["knn_distance"] - 1e-6).all()
    assert out["knn_distance"].mean() > 1.2 * exact["knn_distance"].mean()
    # each unit's distance is its mean distance to the k nearest pool members (itself excluded)
    d = pairwise_distances(points)
    np.fill_diagonal(d, np.inf)
    candidates = [np.sort(d[i])[:k].mean() for i in range(n)]
    in_pool = np.array([np.isclose(out["knn_distance"].iloc[i], candidates[i]) for i in range(n)])
    assert in_pool.mean() < 0.5  # most units are not near their true neighbours any more
