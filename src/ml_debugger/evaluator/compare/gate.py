"""The quality gate: every rule checked on a comparison, with its numbers and a verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ml_debugger.evaluator.compare.comparison import Comparison, records
from ml_debugger.evaluator.compare.rules import Rules
from ml_debugger.exceptions import ConfigurationError

CHECK_COLUMNS = ["rule", "dataset", "subject", "baseline", "candidate", "value", "limit", "passed", "message"]


@dataclass(frozen=True)
class GateResult:
    """The outcome of ``check``: one row per rule and dataset in ``checks``, and the comparison."""

    checks: pd.DataFrame
    comparison: Comparison
    rules: Rules

    @property
    def passed(self) -> bool:
        return bool(self.checks["passed"].all())

    @property
    def failed(self) -> pd.DataFrame:
        return self.checks[~self.checks["passed"]].reset_index(drop=True)

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        """JSON-ready: verdict, both results, the rules, every check, and the newly broken units."""
        broken = self.comparison.newly_broken()
        return {
            "passed": self.passed,
            "baseline": self.comparison.baseline,
            "candidate": self.comparison.candidate,
            "rules": self.rules.to_dict(),
            "checks": records(self.checks),
            "notes": self.comparison.notes,
            "newly_broken_total": len(broken),
            "newly_broken": records(broken if limit is None else broken.head(limit)),
        }


def _number(value: Any) -> float:
    return float("nan") if value is None or pd.isna(value) else float(value)


def _row(rule: str, dataset: str, subject: str, baseline: Any, candidate: Any, value: Any, limit: float,
         detail: str, label: str = "") -> dict[str, Any]:
    value = _number(value)
    passed = not math.isnan(value) and value <= limit
    undefined = " (undefined, so the rule fails)" if math.isnan(value) else ""
    return {
        "rule": rule, "dataset": dataset, "subject": subject,
        "baseline": None if baseline is None else _number(baseline),
        "candidate": None if candidate is None else _number(candidate),
        "value": value, "limit": float(limit), "passed": passed,
        "message": f"{label or subject} on {dataset}: {detail}{undefined}; allowed at most {_fmt(limit)}",
    }


def _change(baseline: Any, candidate: Any, value: Any, what: str) -> str:
    return f"{_fmt(baseline)} -> {_fmt(candidate)} ({what} {_fmt(value)})"


def _fmt(value: Any) -> str:
    """A number short enough to read: integers as such, others to 4 significant digits."""
    number = _number(value)
    return f"{int(number)}" if number.is_integer() else f"{number:.4g}"


def _require(names: set[str], valid: set[str], what: str) -> None:
    unknown = sorted(names - valid)
    if unknown:
        raise ConfigurationError(f"unknown {what} {unknown} in the rules; expected among {sorted(valid)}")


def check(comparison: Comparison, rules: Rules) -> GateResult:
    """Check every rule on every dataset compared (or ``rules.datasets``).

    Raises ConfigurationError for empty rules, or rules naming a metric, category, error code or
    dataset the comparison does not have.
    """
    if rules.is_empty():
        raise ConfigurationError("no rule to check: give a rule flag or a [tool.mldebugger.check] table")
    overview = comparison.overview()
    compared = overview.loc[overview["matched"] > 0, "dataset"].tolist()
    datasets = compared if rules.datasets is None else list(rules.datasets)
    _require(set(datasets), set(compared), "dataset(s) (compared: datasets with units on both sides)")
    metrics = comparison.metrics().set_index(["dataset", "metric"])
    _require(set(rules.max_metric_drop) | set(rules.max_metric_rise), set(metrics.index.get_level_values("metric")),
             "metric(s)")
    categories = comparison.categories().set_index(["dataset", "category"])
    _require(set(rules.max_category_rise), set(categories.index.get_level_values("category")), "category(ies)")
    codes = comparison.codes().set_index(["dataset", "code"])
    _require(set(rules.max_code_rise), set(comparison.code_catalog) | set(codes.index.get_level_values("code")),
             "error code(s)")
    rows = []
    for dataset in datasets:
        units = overview.set_index("dataset").loc[dataset]
        broken, matched = int(units["newly_broken"]), int(units["matched"])
        for rule, limits in (("max_metric_drop", rules.max_metric_drop), ("max_metric_rise", rules.max_metric_rise)):
            for metric, limit in limits.items():
                b, c = (metrics.loc[(dataset, metric), ["baseline", "candidate"]] if (dataset, metric) in metrics.index
                        else (None, None))
                value = _number(b) - _number(c) if rule == "max_metric_drop" else _number(c) - _number(b)
                what = "drop" if rule == "max_metric_drop" else "rise"
                rows.append(_row(rule, dataset, metric, b, c, value, limit, _change(b, c, value, what)))
        if rules.max_newly_broken is not None:
            rows.append(_row("max_newly_broken", dataset, "", None, None, broken, rules.max_newly_broken,
                             f"{broken} of {matched} matched units", "newly broken units"))
        if rules.max_newly_broken_share is not None:
            share = broken / matched
            rows.append(_row("max_newly_broken_share", dataset, "", None, None, share, rules.max_newly_broken_share,
                             f"{broken} of {matched} matched units = {_fmt(share)}", "newly broken share"))
        for category, limit in rules.max_category_rise.items():
            b, c = categories.loc[(dataset, category), ["baseline_ratio", "candidate_ratio"]]
            rows.append(_row("max_category_rise", dataset, category, b, c, c - b, limit, _change(b, c, c - b, "rise"),
                             f"{category} share"))
        for code, limit in rules.max_code_rise.items():
            b, c = (codes.loc[(dataset, code), ["baseline_count", "candidate_count"]] if (dataset, code) in codes.index
                    else (0, 0))
            rows.append(_row("max_code_rise", dataset, code, b, c, c - b, limit, _change(b, c, c - b, "rise"),
                             f"units with {code}"))
    return GateResult(pd.DataFrame(rows, columns=CHECK_COLUMNS), comparison, rules)
