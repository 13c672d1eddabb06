"""The units a comparison works on: which rows of each result, and how the two sides are matched.

A unit is one row of a result's ``samples`` table: a sample for classification, an object for
detection. Units are matched on ``(dataset, key)`` where ``key`` is ``unit_id`` when the samples
tables have that column (a task whose units are not whole inputs adds it) and ``input_id``
otherwise. Each side contributes every dataset at one evaluated epoch ("latest" by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ml_debugger.evaluator.result import Result
from ml_debugger.exceptions import ConfigurationError, NoDataError

UNIT_ID = "unit_id"
INPUT_ID = "input_id"
REQUIRED_COLUMNS = ("dataset", "epoch", INPUT_ID, "correct", "category", "error_codes")
# Per-unit columns carried into the per-unit tables (prefixed baseline_/candidate_) when present.
CARRIED_COLUMNS = ("label", "prediction", "confidence", "category", "error_codes", "hotspot_cluster")
EpochChoice = str | int


def parse_epoch(text: str) -> EpochChoice:
    """``"latest"`` or an epoch number, from text (a flag or a query parameter)."""
    if text == "latest":
        return text
    if not text.isdigit():
        raise ConfigurationError(f"an epoch must be 'latest' or a number >= 0; got {text!r}")
    return int(text)


def unit_key(baseline: pd.DataFrame, candidate: pd.DataFrame) -> str:
    """The column units are matched by: ``unit_id`` when both tables have it, ``input_id`` when neither."""
    has = [UNIT_ID in baseline.columns, UNIT_ID in candidate.columns]
    if has[0] != has[1]:
        raise ConfigurationError(
            f"only the {'baseline' if has[0] else 'candidate'} has per-unit ids ({UNIT_ID!r}): the results are "
            "of different tasks and cannot be compared unit by unit"
        )
    return UNIT_ID if has[0] else INPUT_ID


def check_columns(samples: pd.DataFrame, side: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in samples.columns]
    if missing:
        raise ConfigurationError(
            f"the {side}'s samples table lacks the columns {missing}; expected {list(REQUIRED_COLUMNS)}")


@dataclass(frozen=True)
class Side:
    """One side of a comparison: the result, its selected units and the epoch chosen per dataset."""

    result: Result
    units: pd.DataFrame
    epochs: dict[str, int]
    skipped: dict[str, list[int]]  # datasets without the requested epoch: their evaluated epochs

    @property
    def label(self) -> str:
        meta = self.result.meta
        return f"{meta['model_name']}/{meta['version_name']}/{self.result.name}"


def select_side(result: Result, epoch: EpochChoice, datasets: list[str] | None, side: str) -> Side:
    """The units of ``result`` at ``epoch`` ("latest" per dataset, or an epoch number) in ``datasets``."""
    samples = result.tables["samples"]
    check_columns(samples, side)
    if datasets is not None:
        samples = samples[samples["dataset"].isin(datasets)]
    available = samples.groupby("dataset")["epoch"].unique().map(lambda e: sorted(int(x) for x in e)).to_dict()
    if epoch == "latest":
        chosen = {d: epochs[-1] for d, epochs in available.items()}
    elif isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0:
        chosen = {d: epoch for d, epochs in available.items() if epoch in epochs}
    else:
        raise ConfigurationError(f"unknown {side} epoch {epoch!r}; expected 'latest' or an epoch number >= 0")
    if not chosen:
        raise NoDataError(
            f"the {side} result {result.name!r} has no units at epoch {epoch!r}"
            + (f" in datasets {datasets}" if datasets is not None else "")
            + f"; evaluated epochs per dataset: {available}"
        )
    mask = samples["dataset"].map(chosen) == samples["epoch"]
    skipped = {d: e for d, e in available.items() if d not in chosen}
    return Side(result=result, units=samples[mask].reset_index(drop=True), epochs=chosen, skipped=skipped)


def match(baseline: Side, candidate: Side, key: str) -> pd.DataFrame:
    """Every unit of either side, one row per ``(dataset, key)``, with ``baseline_*``/``candidate_*``
    columns and ``side`` in {"both", "baseline_only", "candidate_only"}.

    Raises ConfigurationError when a side repeats a unit or when no unit is on both sides.
    """
    columns = ["input_hash", "correct", *CARRIED_COLUMNS] + ([INPUT_ID] if key != INPUT_ID else [])
    frames = []
    for name, side in (("baseline", baseline), ("candidate", candidate)):
        units = side.units
        repeated = units.duplicated(["dataset", key])
        if repeated.any():
            examples = units.loc[repeated, ["dataset", key]].head(3).to_dict("records")
            raise ConfigurationError(
                f"the {name} repeats {int(repeated.sum())} units (same dataset and {key}), e.g. {examples}; "
                f"units must be unique per dataset and epoch to be matched"
            )
        keep = ["dataset", key, *(c for c in columns if c in units.columns)]
        frames.append(units[keep].rename(columns={c: f"{name}_{c}" for c in keep[2:]}))
    merged = frames[0].merge(frames[1], on=["dataset", key], how="outer", indicator="side")
    sides = {"both": "both", "left_only": "baseline_only", "right_only": "candidate_only"}
    merged["side"] = merged["side"].astype(str).map(sides)
    if key != INPUT_ID:  # the input a unit belongs to, from whichever side has the unit
        inputs = merged.pop(f"baseline_{INPUT_ID}").combine_first(merged.pop(f"candidate_{INPUT_ID}"))
        merged.insert(2, INPUT_ID, inputs)
    if not (merged["side"] == "both").any():
        raise ConfigurationError(_nothing_in_common(baseline, candidate, key))
    return merged.sort_values(["dataset", key], kind="stable").reset_index(drop=True)


def _nothing_in_common(baseline: Side, candidate: Side, key: str) -> str:
    def describe(side: Side) -> str:
        ids = side.units[key].astype(str)
        return f"{side.label}: datasets {sorted(side.epochs)}, {len(ids)} units ({key} {', '.join(ids.head(3))}, ...)"

    return (
        f"the results have no unit in common (matched by dataset and {key}); "
        f"baseline {describe(baseline)}; candidate {describe(candidate)}"
    )
