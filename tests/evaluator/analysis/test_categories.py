import numpy as np
import pandas as pd
import pytest

from ml_debugger.evaluator.analysis.categories import (
    CATEGORIES,
    RATIO_COLUMNS,
    assign_categories,
    category_ratios,
)
from ml_debugger.evaluator.analysis.config import AnalysisConfig

from .planted import unit_table

CONFIG = AnalysisConfig()
WRONG = {"correct": False}

CASES = [
    # (expected category, overrides)
    ("stable_coverage", {}),
    ("operational_coverage", {"margin": 0.1}),
    ("operational_coverage", {"coverage_percentile": 99.0}),
    ("operational_coverage", {"knn_error_rate": 0.6}),
    ("operational_coverage", {"hotspot_cluster": 3}),
    ("operational_coverage", {"n_epochs_seen": 3, "flips": 2.0, "forgetting_events": 1.0}),
    ("operational_coverage", {"n_epochs_seen": 3, "flips": 1.0, "forgetting_events": 1.0}),
    ("stable_coverage", {"n_epochs_seen": 3, "flips": 1.0, "forgetting_events": 0.0}),  # learned once
    ("recessive_hotspot", WRONG),
    ("recessive_hotspot", {**WRONG, "coverage_percentile": 99.0}),
    ("recessive_hotspot", {**WRONG, "confidence": 0.79}),
    ("critical_hotspot", {**WRONG, "confidence": 0.8}),
    ("hotspot", {**WRONG, "knn_error_rate": 0.5}),
    ("hotspot", {**WRONG, "hotspot_cluster": 0}),
    ("critical_hotspot", {**WRONG, "confidence": 0.95, "hotspot_cluster": 0}),
    ("aleatoric_hotspot", {**WRONG, "label_issue": True, "knn_label_agreement": 0.1}),
    ("aleatoric_hotspot", {**WRONG, "label_issue": True, "knn_label_agreement": np.nan}),
    # a flagged label whose neighbours share it is a model error, not a labelling one
    ("critical_hotspot", {**WRONG, "label_issue": True, "knn_label_agreement": 0.9, "confidence": 0.9}),
    ("aleatoric_hotspot", {**WRONG, "label_issue": True, "knn_label_agreement": 0.2, "confidence": 0.99}),
    # ... and so is one where the model has not learned the region yet (it classifies the
    # training units around it without conviction)
    ("recessive_hotspot", {**WRONG, "label_issue": True, "knn_label_agreement": 0.1, "reference_margin": 0.19}),
    ("aleatoric_hotspot", {**WRONG, "label_issue": True, "knn_label_agreement": 0.1, "reference_margin": 0.2}),
    ("aleatoric_hotspot", {**WRONG, "label_issue": True, "reference_margin": np.nan, "knn_label_agreement": np.nan}),
    # an ambiguous input alone does not blame the data
    ("hotspot", {**WRONG, "knn_label_agreement": 0.4, "entropy": 0.6, "hotspot_cluster": 1}),
    ("recessive_hotspot", {**WRONG, "knn_label_agreement": 0.4, "entropy": 0.3}),
    ("recessive_hotspot", {**WRONG, "knn_label_agreement": np.nan, "entropy": 2.0}),
]


BACKGROUND = [{}] * 9
"""Stable units sharing the split: its base error rate stays at most 10%, so that the dense error
threshold is ``cluster_error_rate`` itself (``min_cluster_lift`` x base rate is below it)."""


@pytest.mark.parametrize("expected, overrides", CASES)
def test_each_rule_and_the_priority_order(expected, overrides):
    table = unit_table(overrides, *BACKGROUND)
    assert assign_categories(table, CONFIG).tolist()[0] == expected


def test_a_dense_error_neighbourhood_is_relative_to_the_split_base_rate():
    # 4 errors in 10 units: the bar is max(0.5, 1.5 x 0.4) = 0.6, so 0.5 or 0.55 is not dense.
    errors = [{**WRONG, "knn_error_rate": rate} for rate in (0.5, 0.7, 0.3, 0.3)]
    table = unit_table(*errors, {"knn_error_rate": 0.55}, {"knn_error_rate": 0.7}, *[{}] * 4)
    assert assign_categories(table, CONFIG).tolist()[:6] == [
        "recessive_hotspot", "hotspot", "recessive_hotspot", "recessive_hotspot",
        "stable_coverage", "operational_coverage",
    ]


def test_conflicting_labels_make_an_error_aleatoric():
    table = unit_table(
        {"input_hash": "x", "label": 1, "correct": False, "prediction": 2, "confidence": 0.95},
        {"input_hash": "x", "label": 2, "prediction": 2},
    )
    assert assign_categories(table, CONFIG).tolist() == ["aleatoric_hotspot", "stable_coverage"]


def test_thresholds_come_from_the_config():
    table = unit_table({**WRONG, "confidence": 0.85}, {"margin": 0.25})
    assert assign_categories(table, CONFIG).tolist() == ["critical_hotspot", "stable_coverage"]
    strict = AnalysisConfig(confident_threshold=0.9, low_margin=0.3)
    assert assign_categories(table, strict).tolist() == ["recessive_hotspot", "operational_coverage"]


def test_without_features_or_epochs_the_rules_needing_them_stay_off():
    nan = {c: np.nan for c in ("knn_error_rate", "knn_label_agreement", "knn_distance", "coverage_percentile")}
    table = unit_table({**nan}, {**nan, **WRONG}, {**nan, **WRONG, "confidence": 0.9})
    assert assign_categories(table, CONFIG).tolist() == [
        "stable_coverage",
        "recessive_hotspot",
        "critical_hotspot",
    ]


def _random_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        correct = bool(rng.random() < 0.7)
        rows.append(
            {
                "dataset": str(rng.choice(["train", "val"])),
                "epoch": int(rng.integers(0, 3)),
                "label": int(rng.integers(0, 4)),
                "input_hash": f"h{rng.integers(0, n)}",
                "correct": correct,
                "confidence": rng.uniform(0.3, 1.0),
                "margin": rng.uniform(0, 1),
                "entropy": rng.uniform(0, 1.5),
                "knn_error_rate": rng.choice([np.nan, rng.uniform(0, 1)]),
                "knn_label_agreement": rng.choice([np.nan, rng.uniform(0, 1)]),
                "coverage_percentile": rng.uniform(0, 100),
                "label_issue": bool(rng.random() < 0.1),
                "flips": float(rng.integers(0, 3)),
                "forgetting_events": float(rng.integers(0, 2)),
                "hotspot_cluster": rng.choice([pd.NA, 0, 1]),
            }
        )
    return unit_table(*rows)


def test_categories_partition_and_ratios_sum_to_one():
    table = _random_table(600, seed=1)
    table["category"] = assign_categories(table, CONFIG)
    assert table["category"].isin(CATEGORIES).all()
    # Correct units land on the coverage side, wrong units on the hotspot side.
    coverage = table["category"].isin(["stable_coverage", "operational_coverage"])
    assert (coverage == table["correct"]).all()
    assert table["category"].nunique() == len(CATEGORIES)

    ratios = category_ratios(table)
    assert list(ratios.columns) == ["dataset", "epoch", *RATIO_COLUMNS]
    assert len(ratios) == table.groupby(["dataset", "epoch"]).ngroups
    np.testing.assert_allclose(ratios[list(RATIO_COLUMNS)].sum(axis=1), 1.0)
    row = ratios[(ratios["dataset"] == "val") & (ratios["epoch"] == 2)].iloc[0]
    group = table[(table["dataset"] == "val") & (table["epoch"] == 2)]
    assert row["hotspot_ratio"] == pytest.approx((group["category"] == "hotspot").mean())


def test_ratio_columns_match_the_reference_page():
    assert RATIO_COLUMNS == (
        "stable_coverage_ratio",
        "operational_coverage_ratio",
        "hotspot_ratio",
        "recessive_hotspot_ratio",
        "critical_hotspot_ratio",
        "aleatoric_hotspot_ratio",
    )


def test_empty_table():
    table = unit_table()
    assert assign_categories(table, CONFIG).empty
    ratios = category_ratios(table.assign(category=pd.Series(dtype=str)))
    assert list(ratios.columns) == ["dataset", "epoch", *RATIO_COLUMNS] and ratios.empty
