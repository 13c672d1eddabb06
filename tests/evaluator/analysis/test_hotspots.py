import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

from ml_debugger.evaluator.analysis.config import AnalysisConfig
from ml_debugger.evaluator.analysis.hotspots import HOTSPOT_COLUMNS, find_hotspots

from .planted import make_planted, make_slice_case

CONFIG = AnalysisConfig()


def _table(samples: pd.DataFrame, prediction: np.ndarray, embedding: np.ndarray, k: int = 10):
    """Units with correctness and the within-group kNN error rate, computed independently."""
    table = samples.copy()
    table["prediction"] = prediction
    table["correct"] = prediction == table["label"].to_numpy()
    rate = np.full(len(table), np.nan)
    for _, rows in table.groupby(["dataset", "epoch"]).indices.items():
        _, idx = NearestNeighbors(n_neighbors=k + 1).fit(embedding[rows]).kneighbors(embedding[rows])
        wrong = ~table["correct"].to_numpy()[rows]
        rate[rows] = wrong[idx[:, 1:]].mean(axis=1)
    table["knn_error_rate"] = rate
    return table


def _planted_table(**kwargs):
    planted = make_planted(**kwargs)
    data = planted.data
    embedding = (data.features - data.features.mean(0)) / data.features.std(0)
    return planted, _table(data.samples, data.probabilities.argmax(1), embedding), embedding


def _overlap(table, hotspot_cluster, truth):
    """Share of the planted errors in their most common cluster, and that cluster's purity."""
    errors = truth & ~table["correct"].to_numpy()
    ids = hotspot_cluster[errors].dropna()
    assert len(ids), "no planted error is in any cluster"
    best = ids.value_counts().idxmax()
    recall = (hotspot_cluster[errors] == best).fillna(False).mean()
    members = (hotspot_cluster == best).fillna(False).to_numpy() & ~table["correct"].to_numpy()
    return recall, truth[members].mean(), best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_planted_slice_of_systematic_errors_is_one_cluster_per_split(seed):
    planted, table, embedding = _planted_table(seed=seed)
    hotspot_cluster, clusters = find_hotspots(table, embedding, CONFIG)
    for dataset in ("train", "val"):
        in_split = (table["dataset"] == dataset).to_numpy()
        recall, purity, best = _overlap(table[in_split], hotspot_cluster[in_split], planted.slice[in_split])
        assert recall >= 0.8, f"{dataset}: only {recall:.0%} of the slice errors in cluster {best}"
        assert purity >= 0.9, f"{dataset}: cluster {best} is only {purity:.0%} slice"
        row = clusters.set_index("cluster_id").loc[best]
        assert row["dataset"] == dataset
        assert row["dominant_labels"] == [0] and row["dominant_confusions"] == ["0->1"]
        assert row["error_rate"] >= 0.8


@pytest.mark.parametrize("seed", [0, 1])
def test_in_high_dimension_hubs_neither_split_nor_swell_the_slice(seed):
    # 64 informative-looking dims: the slice's points are the nearest neighbours of many
    # outside points (hubs) and some of its own points are nobody's (anti-hubs).
    planted, table, embedding = _planted_table(
        seed=seed, n_features=64, nuisance_std=1.0, slice_fraction=0.15, n_train=1000, n_val=3000
    )
    hotspot_cluster, _ = find_hotspots(table, embedding, CONFIG)
    val = (table["dataset"] == "val").to_numpy()
    recall, purity, _ = _overlap(table[val], hotspot_cluster[val], planted.slice[val])
    assert recall >= 0.9 and purity >= 0.95


def test_two_planted_slices_are_two_clusters_not_one():
    planted, table, embedding = _planted_table(seed=4, n_train=300, n_val=1500)
    # A second, separate slice: a blob of class-2 inputs predicted as class 3.
    rng = np.random.default_rng(0)
    second = np.flatnonzero((table["label"] == 2).to_numpy() & ~planted.slice)[:80]
    embedding = embedding.copy()
    embedding[second] = embedding[planted.slice][0] * -1 + 0.05 * rng.normal(size=(len(second), embedding.shape[1]))
    prediction = table["prediction"].to_numpy().copy()
    prediction[second] = 3
    table = _table(planted.data.samples, prediction, embedding)
    truth_second = np.zeros(len(table), dtype=bool)
    truth_second[second] = True
    hotspot_cluster, _ = find_hotspots(table, embedding, CONFIG)
    val = (table["dataset"] == "val").to_numpy()
    recall_1, purity_1, best_1 = _overlap(table[val], hotspot_cluster[val], planted.slice[val])
    recall_2, purity_2, best_2 = _overlap(table[val], hotspot_cluster[val], truth_second[val])
    assert best_1 != best_2
    assert min(recall_1, recall_2) >= 0.8 and min(purity_1, purity_2) >= 0.9


def test_scattered_errors_make_no_cluster():
    rng = np.random.default_rng(7)
    n, d = 3000, 8
    samples = pd.DataFrame(
        {"input_id": [f"u{i}" for i in range(n)], "dataset": "val", "epoch": 0,
         "label": rng.integers(0, 5, n)}
    )
    embedding = rng.normal(size=(n, d)) + 4 * np.eye(d)[samples["label"]]
    prediction = samples["label"].to_numpy().copy()
    flip = rng.random(n) < 0.1  # 10% errors, uniformly spread
    prediction[flip] = (prediction[flip] + 1) % 5
    table = _table(samples, prediction, embedding)
    hotspot_cluster, clusters = find_hotspots(table, embedding, CONFIG)
    assert clusters.empty and hotspot_cluster.isna().all()


def test_cluster_table_is_consistent_with_the_unit_assignment():
    planted, table, embedding = _planted_table(seed=3)
    hotspot_cluster, clusters = find_hotspots(table, embedding, CONFIG)
    assert list(clusters.columns) == list(HOTSPOT_COLUMNS)
    assert hotspot_cluster.dtype == "Int64" and hotspot_cluster.index.equals(table.index)
    assert clusters["cluster_id"].tolist() == list(range(len(clusters)))
    correct = table["correct"].to_numpy()
    for row in clusters.itertuples():
        members = (hotspot_cluster == row.cluster_id).fillna(False).to_numpy()
        group = (table["dataset"] == row.dataset).to_numpy() & (table["epoch"] == row.epoch).to_numpy()
        assert (members <= group).all()
        assert row.size == members.sum()
        assert row.n_errors == (members & ~correct).sum()
        assert row.error_rate == pytest.approx(row.n_errors / row.size)
        assert row.error_coverage == pytest.approx(row.n_errors / (group & ~correct).sum())
        assert 1 <= len(row.representative_input_ids) <= CONFIG.n_representatives
        ids = set(table.loc[members & ~correct, "input_id"])
        assert set(row.representative_input_ids) <= ids
        assert row.n_errors >= CONFIG.min_cluster_size
        base = (group & ~correct).sum() / group.sum()
        assert row.base_error_rate == pytest.approx(base)
        assert row.lift == pytest.approx(row.error_rate / base) and row.lift >= CONFIG.min_cluster_lift
        assert row.unit_share == pytest.approx(row.size / group.sum())
        assert row.unit_share <= CONFIG.max_cluster_share
        assert row.impact == pytest.approx(row.error_coverage * row.lift)
    _assert_ranked(clusters)


def _assert_ranked(clusters: pd.DataFrame) -> None:
    """Latest epoch first, then by impact; cluster ids number the rows in that order."""
    assert clusters["cluster_id"].tolist() == list(range(len(clusters)))
    keys = list(zip(-clusters["epoch"], -clusters["impact"]))
    assert keys == sorted(keys)


def _slice_table(case):
    return _table(case.samples, case.prediction, case.embedding)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("scattered", [0.05, 0.2, 0.5])
def test_a_planted_slice_is_recovered_at_any_base_error_rate(scattered, seed):
    case = make_slice_case(scattered, seed=seed)
    table = _slice_table(case)
    hotspot_cluster, clusters = find_hotspots(table, case.embedding, CONFIG)
    wrong = ~table["correct"].to_numpy()
    planted = case.slice & wrong
    best = hotspot_cluster[planted].value_counts().idxmax()
    found = (hotspot_cluster == best).fillna(False).to_numpy() & wrong
    jaccard = (found & planted).sum() / (found | planted).sum()
    print(f"scattered {scattered:.0%}, base error rate {wrong.mean():.3f}: Jaccard {jaccard:.3f}, "
          f"lifts {clusters['lift'].round(2).tolist()}")
    assert jaccard >= 0.6
    assert best == 0, "the planted slice is not the most impactful cluster"
    assert (clusters["lift"] >= CONFIG.min_cluster_lift).all()
    assert (clusters["unit_share"] <= CONFIG.max_cluster_share).all()


def test_at_a_high_base_rate_only_clusters_with_lift_are_reported():
    # Half of the units wrong at random plus a slice: without the lift rule (the old behaviour)
    # regions barely worse than the split were reported; with it, the slice comes first.
    case = make_slice_case(0.5, seed=3)
    table = _slice_table(case)
    _, clusters = find_hotspots(table, case.embedding, CONFIG)
    _, weak = find_hotspots(table, case.embedding, AnalysisConfig(min_cluster_lift=1.0))
    assert weak["lift"].min() < 1.1
    assert clusters["lift"].min() >= CONFIG.min_cluster_lift
    assert clusters["error_rate"].iloc[0] > 0.9 and clusters["impact"].iloc[0] > 3 * clusters["impact"].iloc[1:].max()


def test_a_region_holding_much_of_its_split_is_not_specific():
    # Two classes; 40% of the split is one blob where the model fails.
    case = make_slice_case(0.05, n_classes=2, slice_fraction=0.4, seed=0)
    table = _slice_table(case)
    hotspot_cluster, clusters = find_hotspots(table, case.embedding, CONFIG)
    assert not (hotspot_cluster[case.slice].notna().mean() > 0.5)
    _, broad = find_hotspots(table, case.embedding, AnalysisConfig(max_cluster_share=0.5))
    assert broad["unit_share"].max() > CONFIG.max_cluster_share


def test_clusters_are_ranked_latest_epoch_first_then_by_impact():
    cases = [make_slice_case(0.2, epoch=epoch, seed=epoch, n=2000) for epoch in (0, 1, 2)]
    samples = pd.concat([c.samples for c in cases], ignore_index=True)
    prediction = np.concatenate([c.prediction for c in cases])
    embedding = np.vstack([c.embedding for c in cases])
    table = _table(samples, prediction, embedding)
    _, clusters = find_hotspots(table, embedding, CONFIG)
    assert clusters["epoch"].iloc[0] == 2 and set(clusters["epoch"]) == {0, 1, 2}
    _assert_ranked(clusters)


def test_sampling_the_core_errors_still_finds_the_slice():
    planted, table, embedding = _planted_table(seed=0)
    config = AnalysisConfig(max_cluster_points=60)
    hotspot_cluster, _ = find_hotspots(table, embedding, config)
    val = (table["dataset"] == "val").to_numpy()
    recall, purity, _ = _overlap(table[val], hotspot_cluster[val], planted.slice[val])
    assert recall >= 0.6 and purity >= 0.9


def test_min_cluster_size_drops_small_clusters():
    planted, table, embedding = _planted_table(seed=0)
    big = int(planted.slice.sum()) + 1
    hotspot_cluster, clusters = find_hotspots(table, embedding, AnalysisConfig(min_cluster_size=big))
    assert clusters.empty and hotspot_cluster.isna().all()


def test_without_features_there_are_no_clusters(tmp_path):
    planted, table, _ = _planted_table(seed=0)
    hotspot_cluster, clusters = find_hotspots(table, None, CONFIG)
    assert hotspot_cluster.isna().all() and hotspot_cluster.dtype == "Int64"
    assert clusters.empty and list(clusters.columns) == list(HOTSPOT_COLUMNS)
    clusters.to_parquet(tmp_path / "empty.parquet")


def test_clusters_round_trip_through_parquet(tmp_path):
    _, table, embedding = _planted_table(seed=0)
    _, clusters = find_hotspots(table, embedding, CONFIG)
    clusters.to_parquet(tmp_path / "hotspots.parquet")
    back = pd.read_parquet(tmp_path / "hotspots.parquet")
    assert back["cluster_id"].tolist() == clusters["cluster_id"].tolist()
    assert list(back["dominant_confusions"].iloc[0]) == clusters["dominant_confusions"].iloc[0]
