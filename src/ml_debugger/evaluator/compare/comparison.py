"""``Comparison``: two results side by side, unit by unit, as pandas tables."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ml_debugger.evaluator.compare import tables
from ml_debugger.evaluator.compare.hotspots import DEFAULT_MIN_JACCARD, hotspots
from ml_debugger.evaluator.compare.units import EpochChoice, Side, match, select_side, unit_key
from ml_debugger.evaluator.result import Result
from ml_debugger.exceptions import ConfigurationError

TABLES = ("overview", "metrics", "categories", "transitions", "changes", "codes", "hotspots", "one_side",
          "input_changes")
UNIT_TABLES = ("changes", "one_side", "input_changes")  # one row per unit: what ``limit`` truncates


class InputChangedWarning(UserWarning):
    """Matched units whose input hash differs: the same id names different data on the two sides."""


class Comparison:
    """A baseline and a candidate result compared unit by unit (see ``compare_results``).

    Attributes:
        baseline, candidate: model, version, result, task and the epoch compared per dataset.
        key: the columns that name a unit within a dataset: ``["input_id"]``, or ``["input_id", "unit_id"]``
            for a task whose units are parts of an input.
        notes: what a reader should know (epochs chosen, datasets or units left out, changed inputs).
        code_catalog: every error code the two results' tasks define.
    """

    def __init__(self, baseline: dict[str, Any], candidate: dict[str, Any], key: list[str],
                 tables: dict[str, pd.DataFrame], notes: list[str], hotspot_min_jaccard: float,
                 code_catalog: list[str]) -> None:
        self.baseline = baseline
        self.candidate = candidate
        self.key = key
        self._tables = tables
        self.notes = notes
        self.hotspot_min_jaccard = hotspot_min_jaccard
        self.code_catalog = code_catalog

    def __repr__(self) -> str:
        return f"Comparison(baseline={_label(self.baseline)!r}, candidate={_label(self.candidate)!r})"

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by name (a copy of the mapping; see the methods for each)."""
        return dict(self._tables)

    def overview(self) -> pd.DataFrame:
        """Per dataset: epochs compared, units on each side, matched, fixed, newly broken, still wrong."""
        return self._tables["overview"].copy()

    def metrics(self) -> pd.DataFrame:
        """Every ``metrics_summary()`` column per dataset: dataset, metric, baseline, candidate, delta."""
        return self._tables["metrics"].copy()

    def categories(self) -> pd.DataFrame:
        """Per dataset and issue category: count and share of units on each side; delta of the share."""
        return self._tables["categories"].copy()

    def transitions(self) -> pd.DataFrame:
        """Units on both sides counted by (baseline_category, candidate_category), per dataset."""
        return self._tables["transitions"].copy()

    def transition_matrix(self, dataset: str) -> pd.DataFrame:
        """The category transition matrix of ``dataset``: rows baseline, columns candidate category."""
        cells, datasets = self._tables["transitions"], sorted(self._tables["overview"]["dataset"])
        if dataset not in datasets:
            raise ConfigurationError(f"unknown dataset {dataset!r}; expected one of {datasets}")
        names = self._tables["categories"]
        names = names.loc[names["dataset"] == dataset, "category"].tolist()
        matrix = cells[cells["dataset"] == dataset].pivot(index="baseline_category", columns="candidate_category",
                                                          values="count")
        return matrix.reindex(index=names, columns=names).fillna(0).astype(int).rename_axis(
            index="baseline", columns="candidate")

    def changes(self, kind: str | None = None) -> pd.DataFrame:
        """Matched units not correct on both sides: ``change`` is newly_broken, still_wrong or fixed,
        with each side's label, prediction, confidence, category, error codes and cluster; newly broken
        first, most confident new error first. ``kind`` keeps one kind of change."""
        table = self._tables["changes"]
        if kind is None:
            return table.copy()
        if kind not in tables.CHANGES:
            raise ConfigurationError(f"unknown change {kind!r}; expected one of {list(tables.CHANGES)}")
        return table[table["change"] == kind].reset_index(drop=True)

    def newly_broken(self) -> pd.DataFrame:
        """Units correct in the baseline and wrong in the candidate, most confident first."""
        return self.changes("newly_broken")

    def fixed(self) -> pd.DataFrame:
        """Units wrong in the baseline and correct in the candidate."""
        return self.changes("fixed")

    def still_wrong(self) -> pd.DataFrame:
        """Units wrong on both sides."""
        return self.changes("still_wrong")

    def codes(self) -> pd.DataFrame:
        """Per dataset and error code: units on each side, delta, and appeared/disappeared/grew/shrank/unchanged."""
        return self._tables["codes"].copy()

    def hotspots(self) -> pd.DataFrame:
        """Hotspot clusters paired by the Jaccard index of their members; appeared/disappeared/grew/shrank."""
        return self._tables["hotspots"].copy()

    def one_side(self) -> pd.DataFrame:
        """Units present on one side only (``side`` is baseline_only or candidate_only)."""
        return self._tables["one_side"].copy()

    def input_changes(self) -> pd.DataFrame:
        """Matched units whose input hash differs between the sides."""
        return self._tables["input_changes"].copy()

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        """Everything as JSON-ready data: tables as lists of records (NaN as null). ``limit`` keeps
        the first rows of the per-unit tables; ``total_rows`` gives every table's full length."""
        out: dict[str, Any] = {
            "baseline": self.baseline, "candidate": self.candidate, "key": self.key,
            "hotspot_min_jaccard": self.hotspot_min_jaccard, "notes": self.notes,
            "total_rows": {name: len(table) for name, table in self._tables.items()}, "tables": {},
        }
        for name, table in self._tables.items():
            shown = table.head(limit) if limit is not None and name in UNIT_TABLES else table
            out["tables"][name] = records(shown)
        return out

    def to_text(self, limit: int = 20) -> str:
        """A report for a terminal, listing at most ``limit`` units per list."""
        from ml_debugger.evaluator.compare.report import comparison_text

        return comparison_text(self, limit)


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON-ready records: NaN/NA as null, lists and arrays as lists."""
    plain = table.copy()
    for column in plain.columns:
        if plain[column].dtype == object:
            plain[column] = plain[column].map(lambda v: v.tolist() if hasattr(v, "tolist") else v)
    return json.loads(plain.to_json(orient="records"))


def _label(info: dict[str, Any]) -> str:
    return f"{info['model']}/{info['version']}/{info['result']}"


def _info(side: Side) -> dict[str, Any]:
    meta = side.result.meta
    return {"model": meta["model_name"], "version": meta["version_name"], "result": side.result.name,
            "task": meta.get("task"), "epochs": dict(side.epochs)}


def _notes(name: str, side: Side, epoch: EpochChoice, other: Side) -> list[str]:
    where = ", ".join(f"{d} {e}" for d, e in sorted(side.epochs.items()))
    chosen = "each dataset at its latest evaluated epoch" if epoch == "latest" else f"epoch {epoch}"
    notes = [f"{name} {side.label}: {chosen} ({where})"]
    for dataset, epochs in sorted(side.skipped.items()):
        notes.append(f"{name}: dataset {dataset!r} left out, it was evaluated at epochs {epochs} only")
    for dataset in sorted(set(side.epochs) - set(other.epochs)):
        notes.append(f"dataset {dataset!r} is in the {name} only: its units are all on one side")
    return notes


def compare_results(
    baseline: Result,
    candidate: Result,
    *,
    baseline_epoch: EpochChoice = "latest",
    candidate_epoch: EpochChoice = "latest",
    datasets: Sequence[str] | None = None,
    hotspot_min_jaccard: float = DEFAULT_MIN_JACCARD,
) -> Comparison:
    """Compare two results unit by unit.

    Args:
        baseline, candidate: the results (two versions, two models on the same inputs, or the same
            result at two epochs).
        baseline_epoch, candidate_epoch: ``"latest"`` (each dataset's latest evaluated epoch) or an
            epoch number (datasets not evaluated at it are left out, with a note).
        datasets: compare only these datasets (default: every one).
        hotspot_min_jaccard: the least Jaccard index of members for two hotspot clusters to be the same.

    Raises:
        ConfigurationError: results of different tasks, no unit in common, or a bad argument.
        NoDataError: a side has no unit at the requested epoch.
    """
    if not 0 < hotspot_min_jaccard <= 1:
        raise ConfigurationError(f"hotspot_min_jaccard must be in (0, 1]; got {hotspot_min_jaccard!r}")
    tasks = baseline.meta.get("task"), candidate.meta.get("task")
    if tasks[0] != tasks[1]:
        raise ConfigurationError(f"cannot compare a {tasks[0]} result with a {tasks[1]} result")
    wanted = None if datasets is None else [str(d) for d in datasets]
    sides = (select_side(baseline, baseline_epoch, wanted, "baseline"),
             select_side(candidate, candidate_epoch, wanted, "candidate"))
    key = unit_key(sides[0].units, sides[1].units)
    merged = tables.classify_changes(match(*sides, key))
    built = {
        "overview": tables.overview(merged, *sides),
        "metrics": tables.metrics(*sides),
        "categories": tables.categories(*sides),
        "transitions": tables.transitions(merged),
        "changes": tables.changes(merged, key),
        "codes": tables.codes(*sides),
        "hotspots": hotspots(merged, *sides, min_jaccard=hotspot_min_jaccard),
        "one_side": tables.one_side(merged, key),
        "input_changes": tables.input_changes(merged, key),
    }
    notes = (_notes("baseline", sides[0], baseline_epoch, sides[1])
             + _notes("candidate", sides[1], candidate_epoch, sides[0]))
    changed = len(built["input_changes"])
    if changed:
        examples = built["input_changes"][key].astype(str).agg("/".join, axis=1).head(3).tolist()
        message = (f"{changed} matched units have a different input hash on the two sides (the same id now "
                   f"names different data), e.g. {examples}; see input_changes()")
        notes.append(message)
        warnings.warn(message, InputChangedWarning, stacklevel=2)
    catalog = sorted({str(code) for result in (baseline, candidate)
                      for code in result.tables.get("codes", pd.DataFrame(columns=["code"]))["code"]})
    return Comparison(_info(sides[0]), _info(sides[1]), key, built, notes, hotspot_min_jaccard, catalog)
