"""The comparison the Compare page shows, on the known regression of the test store."""

from __future__ import annotations

import pandas as pd
import pytest

from ml_debugger.evaluator import Evaluator, Result
from ml_debugger.server.dashboard.compare import compare_results
from ml_debugger.server.dashboard.compare_page import direction
from ml_debugger.store import LocalStore
from tests.dashboard.data import MODEL, StoreData


@pytest.fixture(scope="module")
def results(store_data: StoreData) -> tuple[Result, Result]:
    store = LocalStore(store_data.home)
    return (Evaluator(MODEL, "v1", store=store).get_result(store_data.v1_all),
            Evaluator(MODEL, "v2", store=store).get_result(store_data.v2_latest))


def latest(result: Result) -> pd.DataFrame:
    samples = result.get_samples()
    return samples[samples["epoch"] == samples.groupby("dataset")["epoch"].transform("max")]


def units(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted(zip(frame["dataset"], frame["input_id"], strict=True))


def test_metrics_and_categories_side_by_side(results: tuple[Result, Result]) -> None:
    comparison = compare_results(*results)
    metrics = comparison.metrics.set_index(["dataset", "metric"])
    assert metrics.loc[("val", "accuracy"), "delta"] < 0
    before = results[0].metrics_summary().set_index("dataset").loc["val", "accuracy"]
    assert metrics.loc[("val", "accuracy"), "baseline"] == pytest.approx(before)
    shifts = comparison.categories.groupby("dataset")
    assert shifts["delta"].sum().abs().max() == pytest.approx(0, abs=1e-9)
    assert shifts["baseline"].sum().to_numpy() == pytest.approx(1)


def test_fixed_and_broken_units_match_the_samples(results: tuple[Result, Result]) -> None:
    comparison = compare_results(*results)
    merged = latest(results[0]).merge(latest(results[1]), on=["dataset", "input_id"], suffixes=("_1", "_2"))
    broken = merged[merged["correct_1"] & ~merged["correct_2"]]
    fixed = merged[~merged["correct_1"] & merged["correct_2"]]
    assert units(comparison.broken) == units(broken) and units(comparison.fixed) == units(fixed)
    assert comparison.transitions["count"].sum() == len(merged)
    val = comparison.broken[comparison.broken["dataset"] == "val"]
    assert (val["label"] == 3).mean() > 0.5 and (val["other_prediction"] == 8).mean() > 0.5
    assert list(comparison.broken.columns) == [
        "dataset", "input_id", "label", "baseline_prediction", "other_prediction", "baseline_category",
        "other_category", "baseline_error_codes", "other_error_codes",
    ]


def test_a_task_without_a_correct_column_counts_errors_by_category(results: tuple[Result, Result]) -> None:
    without = [Result(r.meta, {**r.tables, "samples": r.get_samples().drop(columns="correct")}) for r in results]
    comparison = compare_results(*without)
    coverage = ("stable_coverage", "operational_coverage")
    assert comparison.broken["baseline_category"].isin(coverage).all()
    assert not comparison.broken["other_category"].isin(coverage).any()


def test_metric_directions() -> None:
    assert [direction(m) for m in ("accuracy", "net_entropy_loss", "net_entropy", "counts", "map50")] == [
        1, -1, -1, 0, 1]
