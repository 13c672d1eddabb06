import re

import numpy as np
import pandas as pd
import pytest

from ml_debugger.evaluator.analysis import categories as rules
from ml_debugger.evaluator.analysis.categories import CATEGORIES, assign_categories
from ml_debugger.evaluator.analysis.codes import (
    CATALOG_COLUMNS,
    ISSUE_COLUMNS,
    ErrorCode,
    _base,
    code_catalog,
    codes_per_unit,
    detect_codes,
    issues_table,
    register,
    registered_codes,
)
from ml_debugger.evaluator.analysis.config import AnalysisConfig

from .planted import unit_table

CONFIG = AnalysisConfig()
WRONG = {"correct": False}

# code id -> (rows of a table, positions the code must flag); every registered code needs one.
TRIGGERS = {
    "CLS001": ([{**WRONG, "confidence": 0.9}, {"confidence": 0.9}], [0]),
    "CLS002": (
        [
            {**WRONG, "label": 3, "prediction": 5, "confidence": 0.5, "gold_proba": 0.4, "margin": 0.1},
            {**WRONG, "confidence": 0.5, "gold_proba": 0.1, "margin": 0.1},  # label not runner-up
        ],
        [0],
    ),
    "CLS003": ([{"coverage_percentile": 99.0}, {**WRONG, "coverage_percentile": 96.0}, {}], [0, 1]),
    "CLS004": (
        [
            {**WRONG, "label_issue": True, "knn_label_agreement": 0.1},
            {**WRONG, "label_issue": True, "knn_label_agreement": 0.8},
            {**WRONG, "label_issue": True, "knn_label_agreement": 0.1, "reference_margin": 0.1},
        ],
        [0],
    ),
    "CLS005": ([{**WRONG, "knn_label_agreement": 0.3, "entropy": 0.8}, {"entropy": 0.8}], [0]),
    "CLS006": (
        [
            {"n_epochs_seen": 3, "flips": 2.0, "forgetting_events": 1.0},
            {"n_epochs_seen": 3, "flips": 1.0, "forgetting_events": 0.0},
        ],
        [0],
    ),
    # 2 errors in 10 units: the dense error threshold is cluster_error_rate itself.
    "CLS007": ([{**WRONG, "knn_error_rate": 0.7}, {"hotspot_cluster": 2}, {**WRONG}, *[{}] * 7], [0, 1]),
    "CLS008": ([{"margin": 0.05}, {**WRONG, "margin": 0.05}], [0]),
    "CLS009": (
        [
            {"input_hash": "x", "dataset": "train"},
            {"input_hash": "x", "dataset": "val"},
            {"input_hash": "y", "dataset": "val", "epoch": 0},
            {"input_hash": "y", "dataset": "val", "epoch": 1},
        ],
        [0, 1],
    ),
    "CLS010": (
        [
            {"input_hash": "x", "label": 1},
            {"input_hash": "x", "label": 2, **WRONG, "prediction": 1},
            {"input_hash": "z", "label": 1},
            {"input_hash": "z", "label": 1},
        ],
        [0, 1],
    ),
}


def test_the_registry_has_the_ten_classification_codes_with_complete_metadata():
    codes = registered_codes()
    ids = [code.id for code in codes]
    assert ids == sorted(set(ids))
    assert set(TRIGGERS) <= set(ids) and len(ids) >= 10
    names = [code.name for code in codes]
    assert len(set(names)) == len(names)
    for code in codes:
        assert re.fullmatch(r"CLS\d{3}", code.id)
        assert re.fullmatch(r"[a-z_]+", code.name)
        assert code.category in CATEGORIES
        assert len(code.description) > 60, code.id
        assert len(code.recommended_action) > 120, code.id


@pytest.mark.parametrize("code", registered_codes(), ids=lambda c: c.id)
def test_every_code_can_fire_and_fires_only_where_it_should(code):
    assert code.id in TRIGGERS, f"{code.id} has no trigger case in TRIGGERS"
    rows, expected = TRIGGERS[code.id]
    table = unit_table(*rows)
    mask = code.detect(table, CONFIG)
    assert np.flatnonzero(mask).tolist() == expected
    # A stable, correct, confident unit inside coverage carries no code at all.
    assert not code.detect(unit_table({}), CONFIG).any()


def test_codes_explain_the_category():
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(800):
        rows.append(
            {
                "label": int(rng.integers(0, 3)),
                "input_hash": f"h{rng.integers(0, 700)}",
                "dataset": str(rng.choice(["train", "val"])),
                "correct": bool(rng.random() < 0.6),
                "confidence": rng.uniform(0.3, 1.0),
                "margin": rng.uniform(0, 1),
                "entropy": rng.uniform(0, 1.5),
                "knn_error_rate": rng.uniform(0, 1),
                "knn_label_agreement": rng.uniform(0, 1),
                "coverage_percentile": rng.uniform(0, 100),
                "label_issue": bool(rng.random() < 0.2),
                "flips": float(rng.integers(0, 3)),
                "forgetting_events": float(rng.integers(0, 2)),
                "hotspot_cluster": rng.choice([pd.NA, 0]),
            }
        )
    table = unit_table(*rows)
    category = assign_categories(table, CONFIG)
    masks = detect_codes(table, CONFIG)
    has = lambda *ids: masks[list(ids)].any(axis=1)  # noqa: E731
    assert has("CLS004", "CLS010")[category == "aleatoric_hotspot"].all()
    assert has("CLS001")[category == "critical_hotspot"].all()
    assert has("CLS007")[category == "hotspot"].all()
    assert has("CLS003", "CLS005", "CLS006", "CLS007", "CLS008")[category == "operational_coverage"].all()
    assert not has("CLS003", "CLS005", "CLS006", "CLS007", "CLS008")[category == "stable_coverage"].any()
    assert not has("CLS001", "CLS002")[~rules.wrong(table)].any()
    assert not has("CLS008")[rules.wrong(table)].any()


def test_error_codes_column_lists_ids_in_order():
    table = unit_table(
        {**WRONG, "confidence": 0.9, "coverage_percentile": 99.0, "knn_error_rate": 0.9}, {}
    )
    masks = detect_codes(table, CONFIG)
    assert list(masks.columns) == [code.id for code in registered_codes()]
    assert codes_per_unit(masks).tolist() == [["CLS001", "CLS003", "CLS007"], []]


def test_issues_table_counts_ratios_and_affected_classes():
    rows = (
        [{**WRONG, "label": 2, "confidence": 0.9, "dataset": "val"}] * 3
        + [{**WRONG, "label": 1, "confidence": 0.95, "dataset": "val"}]
        + [{"dataset": "val"}] * 6
        + [{**WRONG, "label": 4, "prediction": 0, "confidence": 0.5, "gold_proba": 0.4,
            "margin": 0.1, "dataset": "train"}] * 2
        + [{"dataset": "train"}] * 2
    )
    table = unit_table(*rows)
    issues = issues_table(table, detect_codes(table, CONFIG), CONFIG)
    assert list(issues.columns) == list(ISSUE_COLUMNS)
    assert issues[["dataset", "code"]].values.tolist() == [["train", "CLS002"], ["val", "CLS001"]]
    train, val = issues.iloc[0], issues.iloc[1]
    assert train["count"] == 2 and train["ratio"] == pytest.approx(0.5)
    assert train["affected_classes"] == [4, 0]  # the confused pair, label first
    assert val["count"] == 4 and val["ratio"] == pytest.approx(0.4)
    assert val["affected_classes"] == [2, 1]  # most frequent label first
    assert val["category"] == "critical_hotspot" and val["name"] == "confident_misclassification"


def test_issues_and_catalog_round_trip_through_parquet(tmp_path):
    table = unit_table({**WRONG, "confidence": 0.9})
    issues = issues_table(table, detect_codes(table, CONFIG), CONFIG)
    for name, frame in {"issues": issues, "catalog": code_catalog()}.items():
        path = tmp_path / f"{name}.parquet"
        frame.to_parquet(path)
        back = pd.read_parquet(path)
        assert back.shape == frame.shape
        if name == "issues":
            assert list(back["affected_classes"].iloc[0]) == [0]
    empty = issues_table(unit_table({}), detect_codes(unit_table({}), CONFIG), CONFIG)
    assert empty.empty and list(empty.columns) == list(ISSUE_COLUMNS)


def test_catalog_lists_every_code():
    catalog = code_catalog()
    assert list(catalog.columns) == list(CATALOG_COLUMNS)
    assert catalog["code"].tolist() == [code.id for code in registered_codes()]
    assert catalog.notna().all().all()


class _Flags(ErrorCode):
    id = "TST001"
    name = "test_flags"
    description = "test"
    category = "hotspot"
    recommended_action = "test"
    task = "test"

    def find(self, table, config):
        return np.ones(len(table), dtype=bool)


def test_register_validates_and_keeps_tasks_apart(monkeypatch):
    monkeypatch.setattr(_base, "_REGISTRY", dict(_base._REGISTRY))
    register(_Flags)
    assert [code.id for code in registered_codes("test")] == ["TST001"]
    assert "TST001" not in [code.id for code in registered_codes()]

    bad_id = type("BadId", (_Flags,), {"id": "cls1"})
    with pytest.raises(ValueError, match="cls1"):
        register(bad_id)
    bad_category = type("BadCategory", (_Flags,), {"id": "TST002", "category": "danger"})
    with pytest.raises(ValueError, match="danger"):
        register(bad_category)
    clash = type("Clash", (_Flags,), {})
    with pytest.raises(ValueError, match="TST001"):
        register(clash)
    missing = type("Missing", (_Flags,), {"recommended_action": None})
    with pytest.raises(TypeError, match="recommended_action"):
        register(missing)


def test_detect_rejects_a_rule_that_returns_the_wrong_shape():
    class Broken(_Flags):
        def find(self, table, config):
            return np.ones(len(table) + 1, dtype=bool)

    with pytest.raises(TypeError, match="Broken"):
        Broken().detect(unit_table({}), CONFIG)


def test_the_user_documentation_describes_every_code():
    from pathlib import Path

    doc = (Path(__file__).parents[3] / "README.md").read_text()
    for code in registered_codes():
        section = doc.split(f"### {code.id} `{code.name}`", 1)
        assert len(section) == 2, f"{code.id} has no section"
        body = section[1].split("###", 1)[0]
        assert code.description in body and code.recommended_action in body
        assert f"`{code.category}`" in body
    for category in CATEGORIES:
        assert f"`{category}`" in doc
