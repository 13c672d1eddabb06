"""Matching units: keys, one-sided units, changed inputs, epochs, and results that cannot be compared."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_debugger.evaluator import Result
from ml_debugger.evaluator.compare import InputChangedWarning, compare_results
from ml_debugger.exceptions import ConfigurationError, NoDataError
from tests.evaluator.compare.made import result, units

T, F = True, False


def test_units_on_one_side_are_counted_and_listed() -> None:
    baseline = result("a", units(range(10), [T, F] * 5))
    candidate = result("b", units(range(5, 15), [T] * 10))
    comparison = compare_results(baseline, candidate)
    overview = comparison.overview().iloc[0]
    assert (overview["matched"], overview["baseline_only"], overview["candidate_only"]) == (5, 5, 5)
    changes = [overview[k] for k in ("fixed", "newly_broken", "still_wrong", "still_correct")]
    assert changes == [3, 0, 0, 2]
    one_side = comparison.one_side()
    assert one_side.groupby("side")["input_id"].apply(set).to_dict() == {
        "baseline_only": {"0", "1", "2", "3", "4"}, "candidate_only": {"10", "11", "12", "13", "14"}}
    assert list(one_side.columns) == ["dataset", "input_id", "side", "correct", "category", "confidence"]
    assert set(comparison.fixed()["input_id"]) == {"5", "7", "9"}
    assert comparison.transitions()["count"].sum() == 5


@pytest.mark.parametrize("other", [
    units(range(100, 110), [T] * 10),                 # other ids
    units(range(10), [T] * 10, dataset="test"),       # another dataset
])
def test_results_with_nothing_in_common_are_an_error(other: pd.DataFrame) -> None:
    with pytest.raises(ConfigurationError, match=r"no unit in common .*baseline m/v1/a: datasets \['val'\], 10 units"):
        compare_results(result("a", units(range(10), [T] * 10)), result("b", other))


def test_a_changed_input_hash_is_warned_about_and_listed() -> None:
    hashes = [f"h{i}" for i in range(6)]
    baseline = result("a", units(range(6), [T] * 6, hashes=hashes))
    candidate = result("b", units(range(6), [F, T, T, T, T, T], hashes=["new0", *hashes[1:5], ""]))
    with pytest.warns(InputChangedWarning, match=r"1 matched units have a different input hash .*\['0'\]"):
        comparison = compare_results(baseline, candidate)
    assert comparison.input_changes().to_dict("records") == [
        {"dataset": "val", "input_id": "0", "baseline_input_hash": "h0", "candidate_input_hash": "new0"}]
    assert comparison.newly_broken()["input_changed"].tolist() == [True]  # still matched, and flagged
    assert comparison.overview()["input_changed"].tolist() == [1]  # an empty hash is not a change
    assert "different input hash" in comparison.notes[-1]


def test_units_are_matched_by_input_and_unit_id_when_a_task_has_one() -> None:
    """Detection-like units: several objects per input, named by unit_id within their input."""
    images, objects = ["img1", "img1", "img2", "img2"], ["gt:0", "gt:1", "gt:0", "pred:0"]
    baseline = units(range(4), [T, T, F, F], unit_id=objects).assign(input_id=images)
    candidate = units(range(4), [T, F, T, F], unit_id=objects).assign(input_id=images)
    comparison = compare_results(result("a", baseline, task="detection2d"), result("b", candidate, task="detection2d"))
    assert comparison.key == ["input_id", "unit_id"]
    assert comparison.changes()[["input_id", "unit_id", "change"]].values.tolist() == [
        ["img1", "gt:1", "newly_broken"], ["img2", "pred:0", "still_wrong"], ["img2", "gt:0", "fixed"]]
    assert "units matched by dataset + input_id + unit_id" in comparison.to_text()
    fewer = result("c", candidate.iloc[:3], task="detection2d")
    assert compare_results(result("a", baseline, task="detection2d"), fewer).one_side()[
        ["input_id", "unit_id", "side"]].values.tolist() == [["img2", "pred:0", "baseline_only"]]
    with pytest.raises(ConfigurationError, match="only the baseline has per-unit ids"):
        compare_results(result("a", baseline, task="detection2d"),
                        result("c", units(range(4), [T] * 4), task="detection2d"))


def test_results_of_different_tasks_or_with_repeated_units_are_an_error() -> None:
    ok = result("a", units(range(3), [T] * 3))
    with pytest.raises(ConfigurationError, match="cannot compare a classification result with a detection2d result"):
        compare_results(ok, result("b", units(range(3), [T] * 3), task="detection2d"))
    with pytest.raises(ConfigurationError, match="the candidate repeats 1 units"):
        compare_results(ok, result("b", units([0, 1, 1], [T] * 3)))


def test_each_dataset_at_its_latest_epoch_or_a_chosen_one() -> None:
    samples = [units(range(4), [F] * 4, epoch=0), units(range(4), [T, T, F, F], epoch=1),
               units(range(4), [T] * 4, dataset="train", epoch=0)]
    both = result("a", samples)
    comparison = compare_results(both, both, baseline_epoch=0)
    assert comparison.baseline["epochs"] == {"train": 0, "val": 0}
    assert comparison.candidate["epochs"] == {"train": 0, "val": 1}
    assert "candidate m/v1/a: each dataset at its latest evaluated epoch (train 0, val 1)" in comparison.notes
    assert set(comparison.fixed()["input_id"]) == {"0", "1"}
    later = compare_results(both, both, baseline_epoch=0, candidate_epoch=1)
    assert later.candidate["epochs"] == {"val": 1}
    assert "candidate: dataset 'train' left out, it was evaluated at epochs [0] only" in later.notes
    assert "dataset 'train' is in the baseline only: its units are all on one side" in later.notes
    only_val = compare_results(both, both, baseline_epoch=0, datasets=["val"])
    assert list(only_val.overview()["dataset"]) == ["val"]
    with pytest.raises(NoDataError, match="no units at epoch 5"):
        compare_results(both, both, candidate_epoch=5)
    with pytest.raises(ConfigurationError, match="unknown baseline epoch 'first'"):
        compare_results(both, both, baseline_epoch="first")


def test_metrics_are_whatever_columns_the_task_reports() -> None:
    samples = units(range(3), [T, F, T])
    metrics = pd.DataFrame({"dataset": ["val"], "epoch": [0], "counts": [3], "map": [0.5], "map_50": [np.nan]})
    better = metrics.assign(map=[0.6], map_50=[0.7])
    comparison = compare_results(result("a", samples, metrics=metrics), result("b", samples, metrics=better))
    table = comparison.metrics().set_index("metric")
    assert list(table.index) == ["counts", "map", "map_50"]
    assert table.loc["map", "delta"] == pytest.approx(0.1) and np.isnan(table.loc["map_50", "delta"])


def test_hotspot_clusters_pair_by_jaccard_of_members() -> None:
    # baseline: cluster 0 = units 0-9, cluster 1 = units 20-29; candidate: cluster 5 = units 0-7 and 40-41
    # (Jaccard 8/12 with cluster 0), cluster 6 = units 50-59 (new)
    ids = list(range(60))
    base = [0 if i < 10 else 1 if 20 <= i < 30 else None for i in ids]
    cand = [5 if i < 8 or i in (40, 41) else 6 if i >= 50 else None for i in ids]
    baseline = result("a", units(ids, [k is None for k in base], clusters=base))
    candidate = result("b", units(ids, [k is None or i in (0, 1) for i, k in enumerate(cand)], clusters=cand))
    hotspots = compare_results(baseline, candidate).hotspots()
    rows = {(r.baseline_cluster if pd.notna(r.baseline_cluster) else None,
             r.candidate_cluster if pd.notna(r.candidate_cluster) else None): r for r in hotspots.itertuples()}
    assert set(rows) == {(0, 5), (1, None), (None, 6)}
    paired = rows[(0, 5)]
    assert (paired.status, paired.shared_units, paired.jaccard) == ("shrank", 8, pytest.approx(8 / 12))
    assert (paired.baseline_errors, paired.candidate_errors, paired.errors_delta) == (10, 8, -2)
    assert rows[(1, None)].status == "disappeared" and rows[(None, 6)].status == "appeared"
    assert list(rows[(None, 6)].dominant_labels) == [6] and list(rows[(1, None)].dominant_labels) == [1]
    strict = compare_results(baseline, candidate, hotspot_min_jaccard=0.7).hotspots()
    assert sorted(strict["status"]) == ["appeared", "appeared", "disappeared", "disappeared"]
    with pytest.raises(ConfigurationError, match="hotspot_min_jaccard must be in"):
        compare_results(baseline, candidate, hotspot_min_jaccard=0)


def test_a_task_with_only_the_required_columns_compares() -> None:
    required = ["dataset", "epoch", "input_id", "correct", "category", "error_codes"]
    before = units(range(4), [T, T, F, F])[required]
    after = units(range(4), [T, F, T, F])[required]
    comparison = compare_results(result("a", before), result("b", after))
    assert comparison.changes()[["input_id", "change"]].values.tolist() == [
        ["1", "newly_broken"], ["3", "still_wrong"], ["2", "fixed"]]
    assert comparison.hotspots().empty and comparison.input_changes().empty
    assert "-- Newly broken, most confident first (1)" in comparison.to_text()
    broken = result("b", after)
    broken = Result(broken.meta, {**broken.tables, "samples": after.drop(columns="category")})
    with pytest.raises(ConfigurationError, match=r"the candidate's samples table lacks the columns \['category'\]"):
        compare_results(result("a", before), broken)
