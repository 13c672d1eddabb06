"""The first screen of a Result (``Result.get_summary``): its tables and their printed form.

Every printed table says which datasets and epochs it covers; shares are shares of units;
recommended actions are printed whole, wrapped.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import pandas as pd

from ml_debugger.evaluator.views import epochs_text, latest_rows, unit_view

if TYPE_CHECKING:
    from ml_debugger.evaluator.result import Result

TOP_HOTSPOTS = 5
WIDTH = 100
HOTSPOT_SHOWN = [
    "cluster_id", "dataset", "epoch", "size", "n_errors", "error_rate", "lift", "error_coverage",
    "impact", "dominant_confusions", "representative_input_ids",
]


def summary_parts(result: Result) -> dict[str, pd.DataFrame]:
    """The tables of the summary, each dataset at its latest evaluated epoch."""
    samples = result.tables["samples"]
    names = result.tables["codes"].set_index("code")["name"]
    by_category = unit_view(latest_rows(samples), ["category", "error_code"], ["category"])
    by_category.insert(4, "name", by_category["error_code"].map(names).fillna(""))
    hotspots = result.get_hotspots()
    shown = hotspots["epoch"].to_numpy() == hotspots["dataset"].map(result.summary_epochs).to_numpy()
    return {
        "metrics": result.metrics_summary(),
        "issue_categories": result.issue_category_summary(),
        "error_codes_by_category": by_category,
        "hotspots": hotspots[shown].reset_index(drop=True),
        "issues": result.get_issues(),
    }


def format_summary(result: Result, parts: dict[str, pd.DataFrame]) -> str:
    """The printed summary of ``result`` (see ``Result.get_summary``)."""
    meta = result.meta
    covered = ", ".join(f"{d} at epoch {e}" for d, e in result.summary_epochs.items())
    per_dataset = ", ".join(f"{d}: epoch {e}" for d, e in result.summary_epochs.items())
    lines = [
        f"== {meta['model_name']}/{meta['version_name']} · result {result.name}",
        _wrap(
            f"Evaluated epochs {epochs_text(result.epochs)} (n_epoch={meta['n_epoch']}). Every "
            f"table below shows each dataset at its latest evaluated epoch: {covered}. Ratios "
            "and shares are shares of units."
        ),
    ]
    with pd.option_context(
        "display.width", 160, "display.max_columns", 20, "display.precision", 4,
        "display.max_colwidth", 60,
    ):
        lines += _section(f"Metrics ({per_dataset})", parts["metrics"])
        lines += _section(f"Issue categories: share of units ({per_dataset})", parts["issue_categories"])
        hotspots = parts["hotspots"]
        lines += _section(
            f"Hotspots: top {min(TOP_HOTSPOTS, len(hotspots))} of {len(hotspots)} at these epochs, "
            "by impact = error_coverage x lift (lift = error rate / the split's base error rate)",
            hotspots[HOTSPOT_SHOWN].head(TOP_HOTSPOTS),
        )
        lines += [_wrap(note) for note in _no_hotspot_notes(result, hotspots)]
        lines += _section(
            "Error codes per category: share of the category's units carrying each code "
            "(a unit can carry several)",
            parts["error_codes_by_category"],
        )
    lines += ["", "-- Recommended actions, per error code found", *_actions(parts["issues"])]
    missing = result.missing_datasets
    if len(missing):
        lines += ["", "-- Datasets without rows at some evaluated epoch"]
        for row in missing.itertuples():
            committed = epochs_text(row.committed_epochs) or "none"
            lines.append(_wrap(
                f"{row.dataset}: no rows at epoch {epochs_text(row.missing_epochs)} (committed "
                f"epochs: {committed}). Unavailable: {row.unavailable}."
            ))
    return "\n".join(lines)


def _no_hotspot_notes(result: Result, hotspots: pd.DataFrame) -> list[str]:
    """Why a summarised dataset has no hotspot: errors everywhere (train further) or spread out."""
    min_lift = float(result.meta.get("config", {}).get("min_cluster_lift", 1.5))
    samples = latest_rows(result.tables["samples"])
    notes = []
    for dataset, rows in samples.groupby("dataset", sort=True):
        if (hotspots["dataset"] == dataset).any() or not len(rows):
            continue
        base = 1.0 - float(rows["correct"].mean())
        if base == 0:
            notes.append(f"{dataset}: no errors, so no hotspots.")
        elif base * min_lift > 1:
            notes.append(
                f"{dataset}: no hotspot can stand out: {base:.0%} of its units are errors, so no region "
                f"can reach {min_lift}x that rate (min_cluster_lift). The model fails almost everywhere; "
                "train it further, or check the ground-truth format and label mapping, before looking "
                "for where it fails."
            )
        else:
            notes.append(
                f"{dataset}: its errors ({base:.0%} of units) are spread out: no region of similar "
                f"units has {min_lift}x that error rate (min_cluster_lift); read the error codes below."
            )
    return notes


def _section(title: str, frame: pd.DataFrame) -> list[str]:
    body = frame.to_string(index=False) if len(frame) else "(none)"
    return ["", f"-- {title}", body]


def _actions(issues: pd.DataFrame) -> list[str]:
    lines = []
    for code, group in issues.groupby("code", sort=True):
        first = group.iloc[0]
        found = ", ".join(
            f"{r.dataset} {r.count} units ({r.ratio:.1%}, epoch {r.epoch})" for r in group.itertuples()
        )
        lines.append(f"{code} {first['name']} (usually {first['category']}): {found}")
        lines.append(_wrap(first["recommended_action"], indent="    "))
    return lines or ["(none)"]


def _wrap(text: str, indent: str = "   ") -> str:
    return textwrap.fill(text, width=WIDTH, initial_indent=indent, subsequent_indent=indent)
