import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ml_debugger.evaluator._data import SAMPLE_COLUMNS, EvalData
from ml_debugger.evaluator.analysis import Analysis, AnalysisConfig, analyze
from ml_debugger.evaluator.analysis.categories import CATEGORIES, RATIO_COLUMNS
from ml_debugger.evaluator.analysis.codes import CATALOG_COLUMNS, ISSUE_COLUMNS, registered_codes
from ml_debugger.evaluator.analysis.heatmaps import HEATMAP_AXES
from ml_debugger.evaluator.analysis.hotspots import HOTSPOT_COLUMNS
from ml_debugger.evaluator.analysis.metrics import METRIC_KEYS, classification_metrics
from ml_debugger.evaluator.analysis.signals import SIGNAL_COLUMNS

from .planted import make_planted


@pytest.fixture(scope="module")
def one_epoch():
    planted = make_planted(seed=11)
    return planted, analyze(planted.data)


@pytest.fixture(scope="module")
def three_epochs():
    planted = make_planted(n_train=600, n_val=900, n_epochs=3, seed=12)
    return planted, analyze(planted.data)


def _has(samples: pd.DataFrame, code: str) -> np.ndarray:
    return samples["error_codes"].map(lambda codes: code in codes).to_numpy(dtype=bool)


def test_tables_follow_the_contract(one_epoch, tmp_path):
    planted, result = one_epoch
    assert isinstance(result, Analysis)
    samples = result.samples
    expected = [*SAMPLE_COLUMNS, *SIGNAL_COLUMNS, "hotspot_cluster", "category", "error_codes"]
    assert set(samples.columns) == set(expected)
    assert samples.index.equals(planted.data.samples.index)
    pd.testing.assert_frame_equal(samples[list(SAMPLE_COLUMNS)], planted.data.samples[list(SAMPLE_COLUMNS)])
    assert samples["hotspot_cluster"].dtype == "Int64"
    assert samples["category"].isin(CATEGORIES).all()
    assert list(result.metrics.columns) == ["dataset", "epoch", *METRIC_KEYS]
    assert list(result.categories.columns) == ["dataset", "epoch", *RATIO_COLUMNS]
    assert list(result.issues.columns) == list(ISSUE_COLUMNS)
    assert list(result.hotspots.columns) == list(HOTSPOT_COLUMNS)
    assert list(result.codes.columns) == list(CATALOG_COLUMNS)
    assert set(result.heatmaps) == set(HEATMAP_AXES)
    tables = {
        "samples": samples, "metrics": result.metrics, "categories": result.categories,
        "issues": result.issues, "hotspots": result.hotspots, "codes": result.codes,
        **{f"heatmap_{k}": v for k, v in result.heatmaps.items()},
    }
    for name, frame in tables.items():
        path = tmp_path / f"{name}.parquet"
        frame.to_parquet(path)
        back = pd.read_parquet(path)
        assert back.shape == frame.shape, name
    back = pd.read_parquet(tmp_path / "samples.parquet")
    assert [list(c) for c in back["error_codes"]] == samples["error_codes"].tolist()
    assert back["hotspot_cluster"].dtype == "Int64"


def test_metrics_are_classification_metrics_per_dataset_and_epoch(one_epoch):
    planted, result = one_epoch
    samples = result.samples
    assert result.metrics[["dataset", "epoch"]].values.tolist() == [["train", 0], ["val", 0]]
    for row in result.metrics.itertuples():
        rows = np.flatnonzero((samples["dataset"] == row.dataset).to_numpy())
        expected = classification_metrics(
            planted.data.labels[rows], planted.data.probabilities[rows], samples["error_proba"].to_numpy()[rows]
        )
        for key in METRIC_KEYS:
            assert getattr(row, key) == pytest.approx(expected[key], nan_ok=True), key


def test_categories_partition_each_dataset_and_epoch(one_epoch):
    _, result = one_epoch
    np.testing.assert_allclose(result.categories[list(RATIO_COLUMNS)].sum(axis=1), 1.0)
    val = result.samples[result.samples["dataset"] == "val"]
    row = result.categories.set_index("dataset").loc["val"]
    for category in CATEGORIES:
        assert row[f"{category}_ratio"] == pytest.approx((val["category"] == category).mean())


def test_confident_errors_land_in_critical_hotspot(one_epoch):
    planted, result = one_epoch
    category = result.samples["category"].to_numpy()
    assert planted.confident_error.sum() == 40
    assert (category[planted.confident_error] == "critical_hotspot").mean() >= 0.95
    assert _has(result.samples, "CLS001")[planted.confident_error].all()


def test_the_planted_slice_is_one_hotspot_cluster(one_epoch):
    planted, result = one_epoch
    samples = result.samples
    wrong = ~samples["correct"].to_numpy()
    for dataset in ("train", "val"):
        in_split = (samples["dataset"] == dataset).to_numpy()
        slice_errors = planted.slice & wrong & in_split
        clusters = samples.loc[slice_errors, "hotspot_cluster"]
        best = clusters.value_counts().idxmax()
        assert (clusters == best).fillna(False).mean() >= 0.8
        members = (samples["hotspot_cluster"] == best).fillna(False).to_numpy() & wrong
        assert planted.slice[members].mean() >= 0.9
        assert (samples.loc[slice_errors, "category"] == "hotspot").mean() >= 0.9
        assert _has(samples, "CLS007")[slice_errors].mean() >= 0.9
        row = result.hotspots.set_index("cluster_id").loc[best]
        assert row["dominant_confusions"] == ["0->1"] and row["dataset"] == dataset


def test_label_noise_is_aleatoric(one_epoch):
    planted, result = one_epoch
    noisy = planted.label_noise
    assert (result.samples["category"].to_numpy()[noisy] == "aleatoric_hotspot").mean() >= 0.9
    assert _has(result.samples, "CLS004")[noisy].mean() >= 0.8


def test_leakage_and_conflicting_labels_are_coded_exactly(one_epoch):
    planted, result = one_epoch
    np.testing.assert_array_equal(_has(result.samples, "CLS009"), planted.leaked)
    np.testing.assert_array_equal(_has(result.samples, "CLS010"), planted.conflicting)
    issues = result.issues.set_index(["dataset", "code"])
    assert issues.loc[("val", "CLS009"), "count"] == planted.leaked[
        (result.samples["dataset"] == "val").to_numpy()
    ].sum()


def test_issues_count_the_error_codes_column(one_epoch):
    _, result = one_epoch
    exploded = result.samples[["dataset", "error_codes"]].explode("error_codes").dropna()
    counts = exploded.value_counts().rename("count")
    issues = result.issues.set_index(["dataset", "code"])["count"]
    assert issues.to_dict() == {key: int(value) for key, value in counts.items()}
    assert set(result.issues["code"]) <= set(result.codes["code"])


def test_unstable_inputs_are_coded(three_epochs):
    planted, result = three_epochs
    unstable = _has(result.samples, "CLS006")
    assert planted.unstable.sum() == 60 * 3
    assert unstable[planted.unstable].all()
    assert planted.unstable[unstable].mean() >= 0.9
    # Correct at the first and last epochs, so operational coverage there, not stable.
    last = (result.samples["epoch"] == 2).to_numpy()
    assert (result.samples["category"].to_numpy()[planted.unstable & last] == "operational_coverage").all()
    epochs = result.heatmaps["epoch_by_category"]
    assert sorted(epochs["epoch"].unique()) == [0, 1, 2]
    assert len(result.metrics) == len(result.categories) == 6


def test_without_features_the_feature_rules_stay_off():
    planted = make_planted(n_train=400, n_val=400, seed=13)
    data = EvalData(planted.data.samples, planted.data.probabilities, None)
    result = analyze(data)
    assert result.hotspots.empty and result.samples["hotspot_cluster"].isna().all()
    codes = set(result.issues["code"])
    assert not codes & {"CLS003", "CLS005", "CLS007"}
    assert {"CLS001", "CLS009", "CLS010"} <= codes
    np.testing.assert_allclose(result.categories[list(RATIO_COLUMNS)].sum(axis=1), 1.0)


def test_the_config_reaches_the_rules(one_epoch):
    planted, result = one_epoch
    strict = analyze(planted.data, AnalysisConfig(confident_threshold=0.99))
    before = (result.samples["category"] == "critical_hotspot").sum()
    after = (strict.samples["category"] == "critical_hotspot").sum()
    assert after < before


def test_progress_bar_is_shown_only_when_asked(capsys):
    planted = make_planted(n_train=200, n_val=200, seed=14)
    analyze(planted.data, progress=False)
    assert "analysis" not in capsys.readouterr().err
    analyze(planted.data, progress=True)
    assert "analysis" in capsys.readouterr().err


def test_catalog_lists_every_registered_code(one_epoch):
    _, result = one_epoch
    assert result.codes["code"].tolist() == [code.id for code in registered_codes()]


def test_importing_the_analysis_does_not_import_torch():
    code = "import sys, ml_debugger.evaluator.analysis; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _tiny(n: int, datasets: list[str], n_classes: int, features: bool, epochs=(0,), seed=0) -> EvalData:
    rng = np.random.default_rng(seed)
    samples = pd.DataFrame(
        [
            (f"i{i}", f"h{i}", datasets[i % len(datasets)], epoch, epoch, int(rng.integers(0, n_classes)))
            for epoch in epochs
            for i in range(n)
        ],
        columns=list(SAMPLE_COLUMNS),
    ).astype({"epoch": np.int64, "global_step": "Int64", "label": np.int64})
    proba = rng.dirichlet(np.ones(n_classes), len(samples))
    feats = rng.normal(size=(len(samples), 4)).astype(np.float32) if features else None
    return EvalData(samples, proba, feats)


@pytest.mark.parametrize(
    "data",
    [
        _tiny(1, ["val"], 3, True),
        _tiny(30, ["val"], 2, True),
        _tiny(41, ["train"] * 40 + ["val"], 2, True),
        _tiny(30, ["train", "val"], 2, True, epochs=(0, 1)),
        _tiny(20, ["val", "test"], 3, False),
    ],
    ids=["one unit", "no train split", "one val unit", "two epochs", "no features"],
)
def test_tiny_and_odd_inputs_still_partition(data):
    result = analyze(data)
    assert len(result.samples) == len(data.samples)
    assert result.samples["category"].isin(CATEGORIES).all()
    np.testing.assert_allclose(result.categories[list(RATIO_COLUMNS)].sum(axis=1), 1.0)
    groups = data.samples.groupby(["dataset", "epoch"]).ngroups
    assert len(result.metrics) == len(result.categories) == groups
