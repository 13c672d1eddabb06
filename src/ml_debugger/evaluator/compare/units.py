"""The units a comparison works on: which rows of each result, and how the two sides are matched.

A unit is one row of a result's ``samples`` table: a sample for classification, an object for
detection. Units are matched on ``dataset`` and the *key*: ``input_id``, plus ``unit_id`` when the
samples tables have that column (a task whose units are parts of an input adds it; it names the
unit within its input). Each side contributes every dataset at one evaluated epoch ("latest" by
default).
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
CARRIED_COLUMNS = ("label", "prediction", "confidence", "score", "category", "error_codes", "hotspot_cluster")
# How sure the model is of a unit's outcome: the first of these a task's per-unit table has.
CONFIDENCE_COLUMNS = ("confidence", "score")
EpochChoice = str | int


def parse_epoch(text: str) -> EpochChoice:
    """``"latest"`` or an epoch number, from text (a flag or a query parameter)."""
    if text == "latest":
        return text
    if not text.isdigit():
        raise ConfigurationError(f"an epoch must be 'latest' or a number >= 0; got {text!r}")
    return int(text)


def unit_key(baseline: pd.DataFrame, candidate: pd.DataFrame) -> list[str]:
    """The columns that name a unit within a dataset: ``input_id``, and ``unit_id`` when both tables have it."""
    has = [UNIT_ID in baseline.columns, UNIT_ID in candidate.columns]
    if has[0] != has[1]:
        raise ConfigurationError(
            f"only the {'baseline' if has[0] else 'candidate'} has per-unit ids ({UNIT_ID!r}): the results are "
            "of different tasks and cannot be compared unit by unit"
        )
    return [INPUT_ID, UNIT_ID] if has[0] else [INPUT_ID]


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


def match(baseline: Side, candidate: Side, key: list[str]) -> pd.DataFrame:
    """Every unit of either side, one row per ``dataset`` and ``key``, with ``baseline_*``/``candidate_*``
    columns and ``side`` in {"both", "baseline_only", "candidate_only"}.

    Raises ConfigurationError when a side repeats a unit or when no unit is on both sides.
    """
    ids = ["dataset", *key]
    columns = ["input_hash", "correct", *CARRIED_COLUMNS]
    frames = []
    for name, side in (("baseline", baseline), ("candidate", candidate)):
        units = side.units
        repeated = units.duplicated(ids)
        if repeated.any():
            examples = units.loc[repeated, ids].head(3).to_dict("records")
            raise ConfigurationError(
                f"the {name} repeats {int(repeated.sum())} units (same {' and '.join(ids)}), e.g. {examples}; "
                f"units must be unique per dataset and epoch to be matched"
            )
        carried = [c for c in columns if c in units.columns]
        frame = units[[*ids, *carried]].rename(columns={c: f"{name}_{c}" for c in carried})
        integers = [c for c in frame.columns[len(ids):] if pd.api.types.is_integer_dtype(frame[c])]
        frames.append(frame.astype({c: "Int64" for c in integers}))  # stay integers beside missing units
    merged = frames[0].merge(frames[1], on=ids, how="outer", indicator="side")
    sides = {"both": "both", "left_only": "baseline_only", "right_only": "candidate_only"}
    merged["side"] = merged["side"].astype(str).map(sides)
    if not (merged["side"] == "both").any():
        raise ConfigurationError(_nothing_in_common(baseline, candidate, key))
    return merged.sort_values(ids, kind="stable").reset_index(drop=True)


def _nothing_in_common(baseline: Side, candidate: Side, key: list[str]) -> str:
    def describe(side: Side) -> str:
        ids = side.units[key].astype(str).agg("/".join, axis=1)
        return (f"{side.label}: datasets {sorted(side.epochs)}, {len(ids)} units "
                f"({'/'.join(key)} {', '.join(ids.head(3))}, ...)")

    return (
        f"the results have no unit in common (matched by dataset and {' and '.join(key)}); "
        f"baseline {describe(baseline)}; candidate {describe(candidate)}"
    )
