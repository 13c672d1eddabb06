"""A comparison as text for a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from ml_debugger.evaluator.compare.comparison import Comparison

DISPLAY = {"display.width": 200, "display.max_columns": 30, "display.max_colwidth": 40, "display.precision": 4}
UNIT_COLUMNS = ("label", "prediction", "confidence", "score", "category", "error_codes")


def frame_text(table: pd.DataFrame) -> str:
    """A table as aligned text without its index ("(none)" when empty)."""
    if table.empty:
        return "(none)"
    table = table.copy()
    for column in table.columns:
        if table[column].dtype == object:
            table[column] = table[column].map(_cell)
    with pd.option_context(*(x for item in DISPLAY.items() for x in item)):
        return table.to_string(index=False)


def _cell(value: object) -> object:
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return value


def unit_rows(comparison: Comparison, table: pd.DataFrame) -> pd.DataFrame:
    """The columns of a per-unit table worth a terminal's width: ids, then both sides' outcome."""
    ids = ["dataset", *comparison.key]
    shown = [f"{side}_{c}" for c in UNIT_COLUMNS for side in ("baseline", "candidate")
             if f"{side}_{c}" in table.columns]
    table = table[[*ids, *shown]].rename(columns=lambda c: c.replace("baseline_", "b_").replace("candidate_", "c_"))
    if "b_label" in table.columns and "c_label" in table.columns and table["b_label"].equals(table["c_label"]):
        table = table.drop(columns="b_label").rename(columns={"c_label": "label"})
    return table


def _units_section(comparison: Comparison, title: str, table: pd.DataFrame, limit: int) -> str:
    shown = f"{min(limit, len(table))} of {len(table)}" if len(table) > limit else str(len(table))
    return f"-- {title} ({shown})\n{frame_text(unit_rows(comparison, table.head(limit)))}"


def comparison_text(comparison: Comparison, limit: int = 20) -> str:
    """The comparison's tables as sections of text, at most ``limit`` units per list."""
    c = comparison
    b, k = c.baseline, c.candidate
    head = (f"== Comparison ({b['task']}): baseline {b['model']}/{b['version']}/{b['result']} -> "
            f"candidate {k['model']}/{k['version']}/{k['result']}; units matched by dataset + {' + '.join(c.key)}")
    overview = c.overview().drop(columns="still_correct")
    sections = [
        head, "\n".join(f"   {note}" for note in c.notes),
        f"-- Units per dataset\n{frame_text(overview)}",
        f"-- Metrics\n{frame_text(c.metrics())}",
        f"-- Issue categories (share of each side's units)\n{frame_text(c.categories())}",
    ]
    for dataset in overview["dataset"]:
        if overview.loc[overview["dataset"] == dataset, "matched"].iloc[0]:
            matrix = c.transition_matrix(dataset)
            matrix = matrix.loc[matrix.sum(axis=1) > 0, matrix.sum(axis=0) > 0]
            sections.append(f"-- Category transitions on {dataset} (units on both sides; rows baseline, columns "
                            f"candidate)\n{matrix.to_string()}")
    codes = c.codes()
    sections += [
        f"-- Error codes (units carrying each)\n{frame_text(codes[codes['status'] != 'unchanged'])}",
        f"-- Hotspot clusters (paired by members, Jaccard >= {c.hotspot_min_jaccard:g})\n{frame_text(c.hotspots())}",
        _units_section(c, "Newly broken, most confident first", c.newly_broken(), limit),
        _units_section(c, "Fixed", c.fixed(), limit),
        _units_section(c, "Still wrong, most confident first", c.still_wrong(), limit),
    ]
    one_side = c.one_side()
    counts = one_side.groupby(["dataset", "side"]).size().rename("units").reset_index()
    sections.append(f"-- Units on one side only\n{frame_text(counts)}")
    if len(one_side):
        shown = f"first {min(limit, len(one_side))} of {len(one_side)}"
        sections.append(f"   {shown}:\n{frame_text(one_side.head(limit))}")
    if len(c.input_changes()):
        sections.append("-- Inputs changed (same id, different input hash)\n"
                        f"{frame_text(c.input_changes().head(limit))}")
    return "\n\n".join(sections)
