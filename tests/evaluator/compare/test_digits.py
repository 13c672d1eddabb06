"""Comparisons of three real versions of a digits classifier whose changed samples the test knows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml_debugger.evaluator import Evaluator, Result
from ml_debugger.evaluator.compare import Comparison
from ml_debugger.exceptions import ConfigurationError, InvalidNameError, NoDataError
from ml_debugger.store import LocalStore
from tests.evaluator.compare.digits import HELD_OUT, MODEL, Digits, changed

pytestmark = pytest.mark.slow  # trains and evaluates three real versions once per session


def compare(store: LocalStore, candidate: str, **options) -> Comparison:
    return Evaluator(MODEL, "v1", store=store).compare("v1-eval", f"{candidate}/{candidate}-eval", **options)


def result(store: LocalStore, version: str) -> Result:
    """A version's stored result (v1 and v3 are evaluated at one epoch)."""
    return Evaluator(MODEL, version, store=store).get_result(f"{version}-eval")


@pytest.mark.parametrize("candidate", ["v2", "v3"])
def test_fixed_newly_broken_and_still_wrong_are_the_samples_that_changed(
    digits: Digits, digits_store: LocalStore, candidate: str
) -> None:
    comparison = compare(digits_store, candidate)
    latest = max(digits.outcomes[candidate])
    expected = changed(digits.outcomes["v1"][0], digits.outcomes[candidate][latest])
    for kind, ids in expected.items():
        assert set(comparison.changes(kind)["input_id"]) == ids, kind
    overview = comparison.overview().iloc[0]
    assert overview["matched"] == 540 and overview["baseline_only"] == overview["candidate_only"] == 0
    assert (overview["candidate_epoch"], overview["baseline_epoch"]) == (latest, 0)
    assert {k: overview[k] for k in expected} == {k: len(v) for k, v in expected.items()}
    assert f"each dataset at its latest evaluated epoch (val {latest})" in comparison.notes[1]


def test_more_training_fixes_many_and_breaks_few(digits_store: LocalStore) -> None:
    overview = compare(digits_store, "v2").overview().iloc[0]
    assert overview["fixed"] > 10 * overview["newly_broken"]


def test_a_held_out_class_is_newly_broken_most_confident_first(digits: Digits, digits_store: LocalStore) -> None:
    comparison = compare(digits_store, "v3")
    broken = comparison.newly_broken()
    threes = {i for i, label in digits.labels.items() if label == HELD_OUT}
    assert {i for i in threes if digits.outcomes["v1"][0][i]} <= set(broken["input_id"])
    assert (broken["candidate_label"] == HELD_OUT).mean() > 0.9
    assert broken["candidate_confidence"].is_monotonic_decreasing
    # each side's codes and category are those of its own result
    for side, version in (("baseline", "v1"), ("candidate", "v3")):
        samples = result(digits_store, version).get_samples().set_index("input_id")
        rows = broken.set_index("input_id")
        assert rows[f"{side}_category"].equals(samples.loc[rows.index, "category"].rename(f"{side}_category"))
        codes = zip(rows[f"{side}_error_codes"], samples.loc[rows.index, "error_codes"], strict=True)
        assert all(list(a) == list(b) for a, b in codes)


def test_metrics_are_every_metrics_summary_column_side_by_side(digits_store: LocalStore) -> None:
    comparison = compare(digits_store, "v3")
    before, after = (result(digits_store, v).metrics_summary().set_index("dataset").loc["val"].astype(float)
                     for v in ("v1", "v3"))
    metrics = comparison.metrics().set_index("metric")
    assert list(metrics.index) == list(before.index)
    np.testing.assert_allclose(metrics["baseline"], before)
    np.testing.assert_allclose(metrics["candidate"], after)
    np.testing.assert_allclose(metrics["delta"], after - before)


def test_category_transitions_partition_the_matched_units(digits_store: LocalStore) -> None:
    comparison = compare(digits_store, "v3")
    matrix = comparison.transition_matrix("val")
    categories = comparison.categories().set_index("category")
    assert list(matrix.index) == list(matrix.columns) == list(categories.index)
    assert matrix.to_numpy().sum() == 540
    np.testing.assert_array_equal(matrix.sum(axis=1), categories["baseline_count"])
    np.testing.assert_array_equal(matrix.sum(axis=0), categories["candidate_count"])
    np.testing.assert_allclose(categories["delta"].sum(), 0.0, atol=1e-12)
    with pytest.raises(ConfigurationError, match="unknown dataset 'test'"):
        comparison.transition_matrix("test")


def test_codes_count_the_units_carrying_them(digits_store: LocalStore) -> None:
    comparison = compare(digits_store, "v3")
    codes = comparison.codes().set_index("code")
    for side, version in (("baseline", "v1"), ("candidate", "v3")):
        counts = result(digits_store, version).get_samples()["error_codes"].explode().value_counts()
        np.testing.assert_array_equal(codes[f"{side}_count"], counts.reindex(codes.index, fill_value=0))
    critical = codes.loc["CLS001"]  # confident misclassification: the held-out class, predicted confidently
    assert critical["baseline_count"] == 0 and critical["candidate_count"] > 0 and critical["status"] == "appeared"
    assert set(codes["status"]) <= {"appeared", "disappeared", "grew", "shrank", "unchanged"}


def test_hotspot_clusters_are_paired_by_members(digits_store: LocalStore) -> None:
    comparison = compare(digits_store, "v3")
    hotspots = comparison.hotspots()
    appeared = hotspots[hotspots["status"] == "appeared"]
    assert len(appeared) >= 1 and [HELD_OUT] in [list(labels) for labels in appeared["dominant_labels"]]
    v1, v3 = (result(digits_store, v).get_samples() for v in ("v1", "v3"))
    def members(samples: pd.DataFrame, cluster: object) -> set[str]:
        return set() if pd.isna(cluster) else set(samples.loc[samples["hotspot_cluster"] == cluster, "input_id"])

    for row in hotspots.itertuples():  # Jaccard recomputed from the members
        members_b, members_c = members(v1, row.baseline_cluster), members(v3, row.candidate_cluster)
        assert (row.baseline_size, row.candidate_size) == (len(members_b), len(members_c))
        if row.status not in ("appeared", "disappeared"):
            assert row.jaccard == pytest.approx(len(members_b & members_c) / len(members_b | members_c))
            assert row.jaccard >= comparison.hotspot_min_jaccard


def test_two_epochs_of_one_version(digits: Digits, digits_store: LocalStore) -> None:
    evaluator = Evaluator(MODEL, "v2", store=digits_store)
    result = evaluator.get_result("v2-eval")
    comparison = evaluator.compare(result, result, baseline_epoch=0, candidate_epoch=1)
    expected = changed(digits.outcomes["v2"][0], digits.outcomes["v2"][1])
    assert set(comparison.fixed()["input_id"]) == expected["fixed"]
    assert set(comparison.newly_broken()["input_id"]) == expected["newly_broken"]
    assert comparison.notes[0].endswith("epoch 0 (val 0)") and comparison.notes[1].endswith("epoch 1 (val 1)")
    with pytest.raises(NoDataError, match=r"no units at epoch 7.*\{'val': \[0, 1\]\}"):
        evaluator.compare(result, result, candidate_epoch=7)


def test_references_name_results_of_any_version(digits_store: LocalStore) -> None:
    evaluator = Evaluator(MODEL, "v3", store=digits_store)
    by_name = evaluator.compare("v1/v1-eval", "v3-eval")
    latest = evaluator.compare(f"{MODEL}/v1/v1-eval", "@latest")
    assert latest.candidate == by_name.candidate and latest.baseline["result"] == "v1-eval"
    pd.testing.assert_frame_equal(latest.changes(), by_name.changes())
    with pytest.raises(ConfigurationError, match="bad result reference 'a/b/c/d'"):
        evaluator.compare("a/b/c/d", "v3-eval")
    with pytest.raises(InvalidNameError):
        evaluator.compare("v1/../x", "v3-eval")
    with pytest.raises(NoDataError):
        evaluator.compare("v1/missing", "v3-eval")


def test_as_json_records_with_a_limit(digits_store: LocalStore) -> None:
    comparison = compare(digits_store, "v3")
    data = json.loads(json.dumps(comparison.to_dict(limit=5)))
    assert len(data["tables"]["changes"]) == 5 and data["total_rows"]["changes"] == len(comparison.changes())
    assert len(data["tables"]["metrics"]) == len(comparison.metrics())
    first = data["tables"]["changes"][0]
    assert first["change"] == "newly_broken" and isinstance(first["candidate_error_codes"], list)
    assert data["baseline"] == {"model": MODEL, "version": "v1", "result": "v1-eval", "task": "classification",
                                "epochs": {"val": 0}}


def test_text_report_lists_what_changed(digits_store: LocalStore) -> None:
    comparison = compare(digits_store, "v3")
    text = comparison.to_text(limit=3)
    top = comparison.newly_broken()["input_id"].iloc[0]
    for expected in ("baseline digits/v1/v1-eval -> candidate digits/v3/v3-eval", "-- Metrics", "accuracy",
                     "-- Category transitions on val", f"-- Newly broken, most confident first (3 of "
                     f"{len(comparison.newly_broken())})", "CLS001", "appeared"):
        assert expected in text
    assert f" {top} " in text.split("-- Newly broken")[1].split("-- Fixed")[0]
