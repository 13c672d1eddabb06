"""Evaluator and Result on traces recorded through the real engine and store."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml_debugger.core import TraceSession
from ml_debugger.evaluator import Evaluator
from ml_debugger.evaluator.result import CATEGORY_COLUMNS
from ml_debugger.exceptions import ConfigurationError, InvalidNameError, NoDataError, ResultExistsError
from ml_debugger.store import LocalStore
from ml_debugger.store.base import TraceStore
from ml_debugger.tasks.classification import make_classification_batch

N_CLASSES = 3


def trace(store: LocalStore, *, epochs=(0, 1, 2), n=120, rank=0, ids_offset=0, version="v1", nan_rows=0) -> None:
    """Record a separable 3-class problem whose model improves with the epoch."""
    session = TraceSession("clf", version, "classification", store=store, rank=rank)
    rng = np.random.default_rng(7)
    labels = rng.integers(0, N_CLASSES, n)
    centers = rng.normal(size=(N_CLASSES, 16)) * 3
    features = centers[labels] + rng.normal(size=(n, 16))
    for epoch in epochs:
        for dataset in ("train", "val"):
            logits = np.eye(N_CLASSES)[labels] * (1 + epoch) + rng.normal(size=(n, N_CLASSES)) * 1.5
            logits[:nan_rows] = np.nan
            ids = np.arange(n) + ids_offset
            session.record(
                make_classification_batch(
                    logits, labels, input_hashes=np.array([f"{dataset}{i}" for i in ids], dtype=object),
                    input_ids=ids, features=features,
                ),
                dataset_type=dataset, n_epoch=epoch,
            )
    session.wait_for_save()


def test_latest_int_and_all_epochs(store: LocalStore) -> None:
    trace(store)
    evaluator = Evaluator("clf", "v1", store=store)
    latest = evaluator.request_evaluation()
    assert latest.epochs == [2]
    assert latest.get_samples()["epoch"].unique().tolist() == [2]
    assert evaluator.request_evaluation(n_epoch=1).epochs == [1]
    every = evaluator.request_evaluation(n_epoch=None)
    assert every.epochs == [0, 1, 2]
    assert len(every.get_samples()) == 3 * 2 * 120
    by_epoch = every.metrics_summary(by_epoch=True)
    assert sorted(zip(by_epoch["dataset"], by_epoch["epoch"])) == [(d, e) for d in ("train", "val") for e in range(3)]
    # The default summary is each dataset's latest epoch, with exactly the reference columns
    # (error_proba differs: with every epoch it also learns from the training dynamics).
    summary = every.metrics_summary()
    assert list(summary["dataset"]) == ["train", "val"]
    same = [c for c in summary.columns if not c.startswith("error_proba")]
    pd.testing.assert_frame_equal(summary[same], latest.metrics_summary()[same], check_exact=False, rtol=1e-9)


def test_metrics_are_sklearns(store: LocalStore) -> None:
    trace(store, epochs=(0,))
    result = Evaluator("clf", "v1", store=store).request_evaluation()
    samples = result.get_samples()
    val = samples[samples["dataset"] == "val"]
    row = result.metrics_summary().set_index("dataset").loc["val"]
    assert row["counts"] == 120
    assert row["accuracy"] == pytest.approx((val["prediction"] == val["label"]).mean())
    errors = val["prediction"] != val["label"]
    assert row["error_proba_auroc"] == pytest.approx(roc_auc_score(errors, val["error_proba"]))


def test_issue_categories_partition_each_dataset(store: LocalStore) -> None:
    trace(store)
    result = Evaluator("clf", "v1", store=store).request_evaluation(n_epoch=None)
    categories = result.issue_category_summary()
    assert list(categories.columns) == CATEGORY_COLUMNS
    np.testing.assert_allclose(categories.drop(columns="dataset").sum(axis=1), 1.0)


def test_get_view_counts_units_per_dataset_and_epoch(store: LocalStore) -> None:
    trace(store)
    result = Evaluator("clf", "v1", store=store).request_evaluation(n_epoch=None)
    view = result.get_view(groupby=["category", "error_code"], adjustby="category")
    assert list(view.columns) == ["dataset", "epoch", "category", "error_code", "count", "ratio"]
    assert set(zip(view["dataset"], view["epoch"])) == {("train", 2), ("val", 2)}  # latest epoch
    # ratio = share of the category's units carrying the code (a unit may carry several)
    samples = result.get_samples().query("epoch == 2")
    for row in view[view["error_code"] != "none"].itertuples():
        units = samples[(samples["dataset"] == row.dataset) & (samples["category"] == row.category)]
        carrying = units["error_codes"].map(lambda codes, code=row.error_code: code in codes)
        assert row.count == carrying.sum() and row.ratio == pytest.approx(carrying.mean())
    assert (view["ratio"] <= 1).all()
    by_label = result.get_view(groupby=["dataset", "label"], adjustby="dataset")
    assert by_label.groupby("dataset")["count"].sum().tolist() == [120, 120]
    np.testing.assert_allclose(by_label.groupby("dataset")["ratio"].sum(), 1.0)
    every = result.get_view(groupby="label", by_epoch=True)
    assert sorted(every["epoch"].unique()) == [0, 1, 2] and every["count"].sum() == 720
    with pytest.raises(ConfigurationError, match=r"cannot group by \['colour'\]"):
        result.get_view(groupby=["colour"])
    with pytest.raises(ConfigurationError, match="adjustby .* must also be in groupby"):
        result.get_view(groupby=["label"], adjustby="category")


def test_results_persist_across_processes(store: LocalStore) -> None:
    trace(store, epochs=(0,))
    result = Evaluator("clf", "v1", store=store).request_evaluation(result_name="first")
    code = (
        "import sys; from ml_debugger.evaluator import Evaluator; from ml_debugger.store import LocalStore;"
        "r = Evaluator('clf', 'v1', store=LocalStore(sys.argv[1])).get_result('first');"
        "print(r.metrics_summary().to_json())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(store.root)], capture_output=True, text=True, check=True)
    from_other_process = pd.read_json(io.StringIO(out.stdout))
    pd.testing.assert_frame_equal(from_other_process, result.metrics_summary(), check_dtype=False, rtol=1e-8)
    listed = Evaluator("clf", "v1", store=store).list_results()
    assert listed["result_name"].tolist() == ["first"]
    assert listed["epochs"].tolist() == [[0]]
    again = Evaluator("clf", "v1", store=store).get_result("first")
    pd.testing.assert_frame_equal(again.get_samples(), result.get_samples())
    pd.testing.assert_frame_equal(again.get_issues(), result.get_issues())


def test_duplicate_rows_from_ranks_and_reruns_count_once(store: LocalStore) -> None:
    trace(store, epochs=(0,), rank=0)
    trace(store, epochs=(0,), rank=1, n=120)  # the same ids again from another rank
    trace(store, epochs=(0,), rank=0, n=60, ids_offset=100)  # overlaps 100..119, adds 120..159
    result = Evaluator("clf", "v1", store=store).request_evaluation()
    assert result.metrics_summary().set_index("dataset")["counts"].tolist() == [160, 160]
    assert result.meta["duplicates_removed"] == 2 * (120 + 20)


def test_nonfinite_rows_are_left_out_and_counted(store: LocalStore) -> None:
    with pytest.warns(UserWarning, match="NaN or infinite"):
        trace(store, epochs=(0,), nan_rows=5)
    with pytest.warns(UserWarning, match="10 traced rows have NaN or infinite model outputs"):
        result = Evaluator("clf", "v1", store=store).request_evaluation()
    assert result.meta["nonfinite_removed"] == 10
    assert result.metrics_summary()["counts"].tolist() == [115, 115]


@pytest.mark.parametrize(
    ("n_epoch", "error", "message"),
    [
        ("lastest", ConfigurationError, "unknown n_epoch 'lastest'; expected 'latest', an int >= 0, or None"),
        (1.5, ConfigurationError, "unknown n_epoch 1.5"),
        (True, ConfigurationError, "unknown n_epoch True"),
        (7, NoDataError, r"epoch 7 has no committed traces; committed epochs: \[0, 1, 2\]"),
    ],
)
def test_bad_n_epoch(store: LocalStore, n_epoch: object, error: type, message: str) -> None:
    trace(store)
    with pytest.raises(error, match=message):
        Evaluator("clf", "v1", store=store).request_evaluation(n_epoch=n_epoch)


def test_nothing_to_evaluate_is_a_clear_error(store: LocalStore) -> None:
    with pytest.raises(NoDataError, match="unknown model 'clf'"):
        Evaluator("clf", "v1", store=store).request_evaluation()
    session = TraceSession("clf", "v1", "classification", store=store)
    with pytest.raises(NoDataError, match="has no committed traces; call tracer.wait_for_save"):
        Evaluator("clf", "v1", store=store).request_evaluation()
    session.record(
        make_classification_batch(np.zeros((2, 3)), [0, 1], input_hashes=["a", "b"]), dataset_type="val"
    )
    session.flush()  # written but not committed: still invisible
    with pytest.raises(NoDataError, match="has no committed traces"):
        Evaluator("clf", "v1", store=store).request_evaluation()
    with pytest.raises(NoDataError, match="has no version 'v2'"):
        Evaluator("clf", "v2", store=store).request_evaluation()


def test_result_names(store: LocalStore) -> None:
    trace(store, epochs=(0,))
    evaluator = Evaluator("clf", "v1", store=store)
    evaluator.request_evaluation(result_name="run-1")
    with pytest.raises(ResultExistsError, match="'run-1' already exists"):
        evaluator.request_evaluation(result_name="run-1")
    with pytest.raises(InvalidNameError, match="result_name"):
        evaluator.request_evaluation(result_name="../escape")
    with pytest.raises(NoDataError, match="no result named 'nope'"):
        evaluator.get_result("nope")


def test_unknown_threshold_is_rejected_before_any_work(store: LocalStore) -> None:
    trace(store)
    with pytest.raises(ConfigurationError, match="colour"):
        Evaluator("clf", "v1", store=store).request_evaluation(colour=3)
    assert Evaluator("clf", "v1", store=store).list_results().empty


def test_thresholds_of_an_unknown_model_are_not_guessed(store: LocalStore) -> None:
    with pytest.raises(NoDataError, match="unknown model 'clf'"):
        Evaluator("clf", "v1", store=store).request_evaluation(colour=3)


def test_get_summary_prints_and_returns_the_latest_epoch(store: LocalStore, capsys: pytest.CaptureFixture[str]) -> None:
    trace(store)
    result = Evaluator("clf", "v1", store=store).request_evaluation(n_epoch=None)
    parts = result.get_summary()
    printed = capsys.readouterr().out
    flat = " ".join(printed.split())
    assert "Evaluated epochs 0-2 (n_epoch=all)" in printed
    assert "each dataset at its latest evaluated epoch: train at epoch 2, val at epoch 2" in flat
    assert "-- Metrics (train: epoch 2, val: epoch 2)" in printed
    assert "Issue categories: share of units" in printed and "Error codes per category" in printed
    assert result.summary_epochs == {"train": 2, "val": 2}
    pd.testing.assert_frame_equal(parts["metrics"], result.metrics_summary())
    codes = parts["error_codes_by_category"]
    assert list(codes.columns) == ["dataset", "epoch", "category", "error_code", "name", "count", "ratio"]
    assert set(codes["epoch"]) == {2}
    named = codes[codes["error_code"] != "none"]
    assert (named["name"] != "").all()
    # Recommended actions are printed whole (wrapped), one per code found.
    for code, action in parts["issues"].groupby("code")["recommended_action"].first().items():
        assert f"{code} " in printed and " ".join(action.split()) in flat
    assert all(len(line) <= 160 for line in printed.splitlines())
    assert "Datasets without rows" not in printed


def test_a_dataset_missing_at_the_evaluated_epoch_is_reported(
    store: LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    trace(store, epochs=(0, 1, 2))
    session = TraceSession("clf", "v1", "classification", store=store)
    rng = np.random.default_rng(3)
    labels = rng.integers(0, N_CLASSES, 50)
    session.record(
        make_classification_batch(np.eye(N_CLASSES)[labels] * 3, labels,
                                  input_hashes=np.array([f"v3-{i}" for i in range(50)], dtype=object),
                                  features=rng.normal(size=(50, 16))),
        dataset_type="val", n_epoch=3,
    )
    session.wait_for_save()  # epoch 3: val only (train traced less often)
    result = Evaluator("clf", "v1", store=store).request_evaluation()
    assert result.epochs == [3]
    missing = result.missing_datasets
    assert missing["dataset"].tolist() == ["train"]
    assert missing["missing_epochs"].tolist() == [[3]] and missing["committed_epochs"].tolist() == [[0, 1, 2]]
    assert "coverage_percentile" in missing["unavailable"].iloc[0]
    result.get_summary()
    printed = " ".join(capsys.readouterr().out.split())
    assert "train: no rows at epoch 3 (committed epochs: 0-2). Unavailable: coverage" in printed
    # read back from the store, the note is still there
    again = Evaluator("clf", "v1", store=store).get_result(result.name)
    pd.testing.assert_frame_equal(again.missing_datasets, missing)
    every = Evaluator("clf", "v1", store=store).request_evaluation(n_epoch=None)
    assert every.missing_datasets["missing_epochs"].tolist() == [[3]]
    assert every.summary_epochs == {"train": 2, "val": 3}
    # The catalog's answer equals the generic one read from the traces.
    expected = {"train": [0, 1, 2], "val": [0, 1, 2, 3]}
    assert store.committed_epochs_by_dataset("clf", "v1") == expected
    assert TraceStore.committed_epochs_by_dataset(store, "clf", "v1") == expected


def test_heatmaps_as_tables_matrices_and_plots(store: LocalStore, tmp_path) -> None:
    trace(store, epochs=(0,))
    result = Evaluator("clf", "v1", store=store).request_evaluation()
    assert result.heatmap_names() == ["class_by_category", "class_by_error_code", "confusion", "epoch_by_category"]
    samples = result.get_samples().query("dataset == 'val'")
    confusion = result.get_heatmap("confusion", matrix=True, dataset="val")
    expected = pd.crosstab(samples["label"], samples["prediction"]).reindex(
        index=range(N_CLASSES), columns=range(N_CLASSES), fill_value=0
    )
    np.testing.assert_array_equal(confusion.to_numpy(), expected.to_numpy())
    assert result.get_heatmap("confusion")["count"].sum() == 240
    import matplotlib

    matplotlib.use("Agg")
    ax = result.plot_heatmap("class_by_category", dataset="val")
    ax.figure.savefig(tmp_path / "heatmap.png")
    assert (tmp_path / "heatmap.png").stat().st_size > 0
    with pytest.raises(ConfigurationError, match="unknown heatmap 'colour'"):
        result.get_heatmap("colour")
    # The README's heatmap snippet runs as written on a Result.
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    snippet = readme.split("#### Heatmaps", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {"result": result}
    exec(snippet, namespace)
    pd.testing.assert_frame_equal(
        namespace["matrix"], result.get_heatmap("class_by_category", matrix=True, dataset="val")
    )


def test_issues_per_epoch_and_latest_by_default(store: LocalStore) -> None:
    trace(store)
    result = Evaluator("clf", "v1", store=store).request_evaluation(n_epoch=None)
    every = result.get_issues(by_epoch=True)
    assert sorted(every["epoch"].unique()) == [0, 1, 2]
    exploded = result.get_samples()[["dataset", "epoch", "error_codes"]].explode("error_codes").dropna()
    counts = exploded.value_counts().to_dict()
    assert every.set_index(["dataset", "epoch", "code"])["count"].to_dict() == counts
    latest = result.get_issues()
    pd.testing.assert_frame_equal(latest, every[every["epoch"] == 2].reset_index(drop=True))
    assert (latest["ratio"] <= 1).all()


def _record_noise(store: LocalStore, version: str, accuracy: float) -> None:
    """Features with no structure and predictions right on a random ``accuracy`` share of samples."""
    session = TraceSession("clf", version, "classification", store=store)
    rng = np.random.default_rng(11)
    n = 300
    labels = rng.integers(0, N_CLASSES, n)
    predicted = np.where(rng.random(n) < accuracy, labels, (labels + 1) % N_CLASSES)
    session.record(
        make_classification_batch(np.eye(N_CLASSES)[predicted] * 4, labels,
                                  input_hashes=np.array([f"{version}-{i}" for i in range(n)], dtype=object),
                                  features=rng.normal(size=(n, 16))),
        dataset_type="val", n_epoch=0,
    )
    session.wait_for_save()


@pytest.mark.parametrize(("accuracy", "says"), [
    (0.05, "no hotspot can stand out: 94% of its units are errors, so no region can reach 1.5x that rate"),
    (1.0, "no errors, so no hotspots"),
])
def test_an_empty_hotspot_list_says_why(
    store: LocalStore, capsys: pytest.CaptureFixture[str], accuracy: float, says: str
) -> None:
    version = f"acc{int(accuracy * 100)}"
    _record_noise(store, version, accuracy)
    result = Evaluator("clf", version, store=store).request_evaluation()
    assert result.get_hotspots().empty
    result.get_summary()
    flat = " ".join(capsys.readouterr().out.split())
    assert f"val: {says}" in flat
    assert ("train it further" in flat) == (accuracy < 0.5)
