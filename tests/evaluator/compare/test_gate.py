"""The quality gate: rules from mappings, TOML and flags; verdicts with their numbers; JSON and JUnit."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_debugger.evaluator import Evaluator
from ml_debugger.evaluator.compare import Rules, check, compare_results
from ml_debugger.evaluator.compare.gate_report import gate_junit, gate_text
from ml_debugger.evaluator.compare.rules import parse_assignments, read_check_table
from ml_debugger.exceptions import ConfigurationError
from ml_debugger.store import LocalStore
from tests.evaluator.compare.digits import MODEL
from tests.evaluator.compare.made import result, units

T, F = True, False
CI_RULES = Rules(max_newly_broken_share=0.02, max_category_rise={"critical_hotspot": 0.01},
                 max_code_rise={"CLS001": 5}, max_metric_drop={"accuracy": 0.01})


def gate(store: LocalStore, baseline: str, candidate: str, rules: Rules = CI_RULES):
    return check(Evaluator(MODEL, "v1", store=store).compare(baseline, candidate), rules)


@pytest.mark.slow
def test_holding_a_class_out_fails_and_training_longer_passes(digits_store: LocalStore) -> None:
    failing = gate(digits_store, "v1-eval", "v3/v3-eval")
    assert not failing.passed
    failed = failing.failed.set_index("rule")
    assert set(failed.index) == {"max_newly_broken_share", "max_category_rise", "max_code_rise"}
    broken = len(failing.comparison.newly_broken())
    share = failed.loc["max_newly_broken_share"]
    assert share["value"] == pytest.approx(broken / 540) and share["limit"] == 0.02
    assert share["message"] == (f"newly broken share on val: {broken} of 540 matched units = {broken / 540:.4g}; "
                                "allowed at most 0.02")
    code = failed.loc["max_code_rise"]
    assert (code["baseline"], code["value"]) == (0, code["candidate"]) and code["candidate"] > 5
    assert failed.loc["max_category_rise", "message"].startswith("critical_hotspot share on val: 0 -> ")
    assert gate(digits_store, "v1-eval", "v2/v2-eval").passed


@pytest.mark.slow
def test_a_metric_drop_beyond_its_tolerance_fails(digits_store: LocalStore) -> None:
    outcome = gate(digits_store, "v2/v2-eval", "v3/v3-eval", Rules(max_metric_drop={"accuracy": 0.01, "auroc": 0.5}))
    checks = outcome.checks.set_index("subject")
    accuracy = checks.loc["accuracy"]
    assert not accuracy["passed"] and accuracy["value"] == pytest.approx(accuracy["baseline"] - accuracy["candidate"])
    assert accuracy["value"] > 0.05
    assert checks.loc["auroc", "passed"]
    numbers = f"{accuracy['baseline']:.4g} -> {accuracy['candidate']:.4g} (drop "
    assert accuracy["message"].startswith(f"accuracy on val: {numbers}")


def test_every_kind_of_rule_on_units_the_test_chose() -> None:
    baseline = result("a", units(range(10), [T] * 8 + [F] * 2))
    candidate = result("b", units(range(10), [F] * 3 + [T] * 5 + [F, T]))
    comparison = compare_results(baseline, candidate)
    rules = Rules(max_newly_broken=2, max_newly_broken_share=0.5, max_metric_rise={"counts": 0},
                  max_category_rise={"critical_hotspot": 0.1}, max_code_rise={"CLS001": 1, "CLS007": 0})
    checks = check(comparison, rules).checks.set_index(["rule", "subject"])["value"].to_dict()
    assert checks == {
        ("max_metric_rise", "counts"): 0, ("max_newly_broken", ""): 3, ("max_newly_broken_share", ""): 0.3,
        ("max_category_rise", "critical_hotspot"): pytest.approx(0.2), ("max_code_rise", "CLS001"): 2,
        ("max_code_rise", "CLS007"): 0,
    }
    verdicts = check(comparison, rules).checks.set_index(["rule", "subject"])["passed"].to_dict()
    assert [k for k, ok in verdicts.items() if not ok] == [
        ("max_newly_broken", ""), ("max_category_rise", "critical_hotspot"), ("max_code_rise", "CLS001")]


def test_an_undefined_value_fails_its_rule() -> None:
    samples = units(range(3), [T] * 3)
    metrics = pd.DataFrame({"dataset": ["val"], "epoch": [0], "auroc": [np.nan]})
    outcome = check(compare_results(result("a", samples, metrics=metrics), result("b", samples, metrics=metrics)),
                    Rules(max_metric_drop={"auroc": 0.1}))
    assert not outcome.passed and "undefined, so the rule fails" in outcome.checks["message"][0]


@pytest.mark.parametrize("rules, message", [
    (Rules(), "no rule to check"),
    (Rules(max_metric_drop={"acuracy": 0.1}), r"unknown metric\(s\) \['acuracy'\]"),
    (Rules(max_category_rise={"critical": 0.1}), r"unknown category\(ies\) \['critical'\]"),
    (Rules(max_code_rise={"CLS01": 0}), r"unknown error code\(s\) \['CLS01'\]"),
    (Rules(max_newly_broken=0, datasets=("test",)), r"unknown dataset\(s\) .*\['test'\]"),
])
def test_rules_naming_what_the_comparison_lacks_are_errors(rules: Rules, message: str) -> None:
    comparison = compare_results(result("a", units(range(3), [T] * 3)), result("b", units(range(3), [T] * 3)))
    with pytest.raises(ConfigurationError, match=message):
        check(comparison, rules)


def test_rules_from_toml_with_flags_on_top(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n\n[tool.mldebugger.check]\nbaseline = "v1/release"\ndatasets = ["val"]\n'
                    'max_metric_drop = { accuracy = 0.01, auroc = 0.02 }\nmax_newly_broken_share = 0.05\n'
                    'max_code_rise = { CLS001 = 0 }\n')
    table = read_check_table(path)
    assert table.pop("baseline") == "v1/release"
    rules = Rules.from_mapping(table, str(path))
    assert rules == Rules(max_metric_drop={"accuracy": 0.01, "auroc": 0.02}, max_newly_broken_share=0.05,
                          max_code_rise={"CLS001": 0}, datasets=("val",))
    flags = Rules(max_metric_drop=parse_assignments(["accuracy=0.03"], "--max-metric-drop"), max_newly_broken=4)
    merged = rules.merged(flags)
    assert merged.max_metric_drop == {"accuracy": 0.03, "auroc": 0.02}
    assert (merged.max_newly_broken, merged.max_newly_broken_share, merged.datasets) == (4, 0.05, ("val",))
    assert read_check_table(tmp_path / "pyproject.toml") and not read_check_table(_write(tmp_path / "a.toml", "x = 1"))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("mapping, message", [
    ({"max_metric_dorp": {}}, r"unknown rule\(s\) \['max_metric_dorp'\]"),
    ({"max_metric_drop": 0.1}, "must be a table of name = limit"),
    ({"max_metric_drop": {"accuracy": "1%"}}, r"max_metric_drop.accuracy must be a number >= 0; got '1%'"),
    ({"max_newly_broken": 1.5}, "max_newly_broken must be an integer >= 0"),
    ({"max_newly_broken_share": -0.1}, "must be a number >= 0"),
    ({"datasets": "val"}, "must be a list of dataset names"),
])
def test_bad_rules_are_refused_with_what_was_given(mapping: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Rules.from_mapping(mapping, "pyproject.toml")


def test_bad_toml_and_bad_flags_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is not valid TOML"):
        read_check_table(_write(tmp_path / "bad.toml", "[tool.mldebugger.check\n"))
    with pytest.raises(ConfigurationError, match="cannot read the rules file"):
        read_check_table(tmp_path / "missing.toml")
    with pytest.raises(ConfigurationError, match="takes NAME=LIMIT"):
        parse_assignments(["accuracy"], "--max-metric-drop")
    with pytest.raises(ConfigurationError, match="--max-code-rise CLS001 must be an integer"):
        parse_assignments(["CLS001=0.5"], "--max-code-rise", integer=True)


@pytest.mark.slow
def test_json_and_junit_reports_hold_every_check(digits_store: LocalStore) -> None:
    outcome = gate(digits_store, "v1-eval", "v3/v3-eval")
    data = json.loads(json.dumps(outcome.to_dict(limit=3)))
    assert data["passed"] is False and len(data["checks"]) == 4
    assert {c["rule"]: c["passed"] for c in data["checks"]}["max_metric_drop"] is True
    assert len(data["newly_broken"]) == 3 and data["newly_broken_total"] == len(outcome.comparison.newly_broken())
    assert data["rules"]["max_code_rise"] == {"CLS001": 5}
    suite = ET.fromstring(gate_junit(outcome, limit=3)).find("testsuite")
    cases = suite.findall("testcase")
    assert (suite.get("tests"), suite.get("failures")) == ("4", "3") and len(cases) == 4
    failures = {c.get("name"): c.find("failure").get("message") for c in cases if c.find("failure") is not None}
    assert set(failures) == {"max_newly_broken_share", "max_category_rise[critical_hotspot]", "max_code_rise[CLS001]"}
    assert failures["max_code_rise[CLS001]"].startswith("units with CLS001 on val: 0 -> ")
    assert "Newly broken units" in suite.find("system-out").text
    text = gate_text(outcome, limit=3)
    assert text.startswith("mldebugger check FAILED (3 of 4 checks)") and "\nFAIL  max_newly_broken_share" in text
    assert text.index("FAIL") < text.index("PASS")
