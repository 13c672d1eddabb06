import numpy as np
import pandas as pd
import pytest

from ml_debugger.evaluator._data import EvalData
from ml_debugger.evaluator.analysis.basic import basic_signals
from ml_debugger.evaluator.analysis.label_issues import find_label_issues
from ml_debugger.evaluator.analysis.signals import SIGNAL_COLUMNS, Signals, compute_signals

CONTRACT_COLUMNS = [
    "prediction", "correct", "confidence", "margin", "entropy", "loss", "gold_proba",
    "knn_error_rate", "knn_label_agreement", "knn_distance", "coverage_percentile",
    "reference_margin", "label_issue", "label_quality", "suggested_label", "error_proba",
    "n_epochs_seen", "gold_proba_mean", "gold_proba_std", "correct_fraction", "flips",
    "forgetting_events", "aum",
]
INT_COLUMNS = {"prediction", "suggested_label", "n_epochs_seen"}
BOOL_COLUMNS = {"correct", "label_issue"}


def _traces(*, n_inputs=400, n_epochs=1, with_features=True, seed=0):
    """A small 3-class mixture: 30% train, 50% val, 20% test, each input at every epoch."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n_inputs)
    split = rng.choice(["train", "val", "test"], size=n_inputs, p=[0.3, 0.5, 0.2])
    x = np.eye(3, 20)[labels] * 3 + rng.normal(size=(n_inputs, 20))
    frames, probas, features = [], [], []
    for epoch in range(n_epochs):
        logits = (x[:, :3] + rng.normal(scale=0.5 + 0.2 * epoch, size=(n_inputs, 3))) * 1.5
        proba = np.exp(logits - logits.max(1, keepdims=True))
        probas.append(proba / proba.sum(1, keepdims=True))
        features.append(x)
        frames.append(pd.DataFrame({
            "input_id": [f"in{i}" for i in range(n_inputs)],
            "input_hash": [f"h{i}" for i in range(n_inputs)],
            "dataset": split,
            "epoch": np.full(n_inputs, epoch, dtype=np.int64),
            "global_step": pd.array([epoch * 10] * n_inputs, dtype="Int64"),
            "label": labels.astype(np.int64),
        }))
    samples = pd.concat(frames, ignore_index=True)
    feats = np.concatenate(features).astype(np.float32) if with_features else None
    return EvalData(samples, np.concatenate(probas), feats)


def test_columns_dtypes_and_index_follow_the_contract():
    data = _traces()
    signals = compute_signals(data)
    assert isinstance(signals, Signals)
    table = signals.table
    assert list(table.columns) == CONTRACT_COLUMNS == list(SIGNAL_COLUMNS)
    assert table.index.equals(data.samples.index)
    for column in CONTRACT_COLUMNS:
        expected = np.float64
        if column in INT_COLUMNS:
            expected = np.int64
        elif column in BOOL_COLUMNS:
            expected = bool
        assert table[column].dtype == expected, column
    assert signals.embedding.dtype == np.float32 and signals.embedding.shape == (len(table), 20)
    filled = [c for c in CONTRACT_COLUMNS if c not in ("gold_proba_mean", "gold_proba_std",
                                                      "correct_fraction", "flips",
                                                      "forgetting_events", "aum")]
    assert table[filled].notna().all().all()
    assert ((table["error_proba"] >= 0) & (table["error_proba"] <= 1)).all()
    assert table["coverage_percentile"].between(0, 100).all()


def test_parts_agree_with_their_modules():
    data = _traces(seed=1)
    table = compute_signals(data).table
    basic = basic_signals(data.probabilities, data.labels)
    pd.testing.assert_frame_equal(table[list(basic.columns)], basic)
    for _, rows in data.samples.groupby(["dataset", "epoch"]).indices.items():
        expected = find_label_issues(data.labels[rows], data.probabilities[rows])
        got = table.iloc[rows][list(expected.columns)].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected)


def test_parquet_round_trip(tmp_path):
    table = compute_signals(_traces(n_epochs=2)).table
    table.to_parquet(tmp_path / "signals.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "signals.parquet"), table)


def test_without_features_the_neighbour_signals_are_nan():
    signals = compute_signals(_traces(with_features=False))
    assert signals.embedding is None
    table = signals.table
    neighbour = ["knn_error_rate", "knn_label_agreement", "knn_distance", "coverage_percentile"]
    assert table[neighbour].isna().all().all()
    assert table[["confidence", "label_quality", "error_proba"]].notna().all().all()


def test_single_epoch_has_no_dynamics():
    table = compute_signals(_traces(n_epochs=1)).table
    assert (table["n_epochs_seen"] == 1).all()
    assert table[["gold_proba_mean", "gold_proba_std", "flips", "aum"]].isna().all().all()


def test_several_epochs_fill_the_dynamics():
    data = _traces(n_epochs=3, seed=2)
    table = compute_signals(data).table
    assert (table["n_epochs_seen"] == 3).all()
    assert table[["gold_proba_mean", "flips", "forgetting_events", "aum"]].notna().all().all()
    assert (table["flips"] > 0).any()
    first = data.samples.index[(data.samples["input_id"] == "in0")]
    expected = table.loc[first, "gold_proba"].mean()
    assert table.loc[first, "gold_proba_mean"].iloc[0] == pytest.approx(expected)


def test_progress_bar(capsys):
    compute_signals(_traces(n_inputs=100), progress=True)
    assert "signals" in capsys.readouterr().err


@pytest.mark.parametrize("n_units", [0, 1, 3])
def test_degenerate_sizes(n_units):
    samples = pd.DataFrame({
        "input_id": pd.Series([f"in{i}" for i in range(n_units)], dtype=object),
        "input_hash": pd.Series(["h"] * n_units, dtype=object),
        "dataset": pd.Series(["val"] * n_units, dtype=object),
        "epoch": np.zeros(n_units, dtype=np.int64),
        "global_step": pd.array([0] * n_units, dtype="Int64"),
        "label": np.zeros(n_units, dtype=np.int64),
    })
    proba = np.tile([0.7, 0.3], (n_units, 1))
    features = np.random.default_rng(0).normal(size=(n_units, 100)).astype(np.float32)
    table = compute_signals(EvalData(samples, proba, features)).table
    assert list(table.columns) == CONTRACT_COLUMNS and len(table) == n_units
    assert table["flips"].dtype == np.float64
    np.testing.assert_allclose(table["error_proba"], 0.3)  # too few errors: 1 - confidence
