"""Comparing results: the interface the Compare page is built on, and a minimal implementation.

`compare_results(baseline, other)` takes two :class:`Result` objects (their ``samples`` table
included) and returns a :class:`Comparison`. Units are matched by ``(dataset, input_id)`` at each
dataset's latest evaluated epoch, as ``metrics_summary()`` reports them. A unit is an error when
its ``correct`` column is false or, for a task without one, when its category is not a coverage
category. The comparison API (``Evaluator.compare``) is to provide the same tables; the page then
calls it instead of this module's function.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ml_debugger.evaluator.result import Result

COVERAGE_CATEGORIES = ("stable_coverage", "operational_coverage")
UNIT_KEY = ["dataset", "input_id"]


@dataclass(frozen=True)
class Comparison:
    """How ``other`` differs from ``baseline``.

    Attributes:
        metrics: ``dataset, metric, baseline, other, delta`` (``other - baseline``).
        categories: ``dataset, category, baseline, other, delta`` (shares of the units).
        transitions: ``dataset, baseline_category, other_category, count`` over the matched units.
        fixed: units that are errors in ``baseline`` and not in ``other``: ``dataset, input_id``,
            the class column if any, then ``baseline_*`` and ``other_*`` prediction, category and codes.
        broken: units that are errors in ``other`` and not in ``baseline`` (same columns).
    """

    metrics: pd.DataFrame
    categories: pd.DataFrame
    transitions: pd.DataFrame
    fixed: pd.DataFrame
    broken: pd.DataFrame


def _long(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    values = [c for c in frame.columns if c != "dataset" and pd.api.types.is_numeric_dtype(frame[c])]
    return frame.melt(id_vars="dataset", value_vars=values, var_name=name, value_name="value")


def _side_by_side(baseline: pd.DataFrame, other: pd.DataFrame, name: str) -> pd.DataFrame:
    merged = _long(baseline, name).merge(_long(other, name), on=["dataset", name], suffixes=("_b", "_o"))
    merged = merged.rename(columns={"value_b": "baseline", "value_o": "other"})
    merged["delta"] = merged["other"] - merged["baseline"]
    return merged.reset_index(drop=True)


def _latest_units(result: Result) -> pd.DataFrame:
    samples = result.get_samples()
    latest = samples["epoch"] == samples.groupby("dataset")["epoch"].transform("max")
    units = samples[latest].drop_duplicates(UNIT_KEY)
    if "correct" in units.columns:
        error = ~units["correct"].astype(bool)
    else:
        error = ~units["category"].isin(COVERAGE_CATEGORIES)
    return units.assign(_error=error.to_numpy())


def compare_results(baseline: Result, other: Result) -> Comparison:
    """The :class:`Comparison` of two results (see the module docstring)."""
    categories = _side_by_side(baseline.issue_category_summary(), other.issue_category_summary(), "category")
    categories["category"] = categories["category"].str.removesuffix("_ratio")
    before, after = _latest_units(baseline), _latest_units(other)
    shared = [c for c in ("label", "gt_label", "gt_class") if c in before.columns and c in after.columns][:1]
    sides = [c for c in ("prediction", "category", "error_codes") if c in before.columns and c in after.columns]
    matched = before[[*UNIT_KEY, *shared, *sides, "_error"]].merge(
        after[[*UNIT_KEY, *sides, "_error"]], on=UNIT_KEY, suffixes=("_baseline", "_other")
    )
    sides_named = {f"{c}_{s}": f"{s}_{c}" for c in (*sides, "_error") for s in ("baseline", "other")}
    matched = matched.rename(columns=sides_named)
    transitions = (
        matched.groupby(["dataset", "baseline_category", "other_category"], observed=True).size()
        .rename("count").reset_index()
    )
    columns = [*UNIT_KEY, *shared, *(f"{s}_{c}" for c in sides for s in ("baseline", "other"))]
    was, now = matched["baseline__error"], matched["other__error"]
    return Comparison(
        metrics=_side_by_side(baseline.metrics_summary(), other.metrics_summary(), "metric"),
        categories=categories,
        transitions=transitions,
        fixed=matched.loc[was & ~now, columns].reset_index(drop=True),
        broken=matched.loc[~was & now, columns].reset_index(drop=True),
    )
