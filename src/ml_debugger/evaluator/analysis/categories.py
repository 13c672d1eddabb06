"""The six issue categories: a partition of the units, and the rules they are built from.

Every unit gets exactly one category. A correct unit is ``stable_coverage`` unless it is fragile
(``operational_coverage``). A wrong unit takes the first of, in this priority order:
``aleatoric_hotspot`` (the data is the likely cause: a suspected label error or conflicting
labels), ``critical_hotspot`` (confidently wrong), ``hotspot`` (inside a dense cluster of
errors), ``recessive_hotspot`` (every other error).

The rule functions take the per-unit table (the samples' columns, the signal columns and
``hotspot_cluster``) and return a boolean array; a rule whose signal is NaN (not computable,
e.g. no features or a single epoch) is False. The error codes reuse the same rules, so a unit's
category is always explained by its codes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_debugger.evaluator.analysis.config import AnalysisConfig
from ml_debugger.evaluator.analysis.duplicates import conflicting_label_mask
from ml_debugger.evaluator.analysis.hotspots import dense_error_rate

CATEGORIES = (
    "stable_coverage",
    "operational_coverage",
    "hotspot",
    "recessive_hotspot",
    "critical_hotspot",
    "aleatoric_hotspot",
)
"""Category names, in the column order of the reference ``issue_category_summary``."""

RATIO_COLUMNS = tuple(f"{name}_ratio" for name in CATEGORIES)


def _col(table: pd.DataFrame, name: str) -> np.ndarray:
    return table[name].to_numpy(dtype=np.float64, na_value=np.nan)


def wrong(table: pd.DataFrame) -> np.ndarray:
    """The unit is misclassified."""
    return ~table["correct"].to_numpy(dtype=bool)


def confident(table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
    """Confidence (top-1 probability) is at least ``confident_threshold``."""
    return _col(table, "confidence") >= config.confident_threshold


def low_margin(table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
    """Top-1 minus top-2 probability is below ``low_margin``."""
    return _col(table, "margin") < config.low_margin


def out_of_coverage(table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
    """``coverage_percentile`` is above ``coverage_percentile_max``."""
    return _col(table, "coverage_percentile") > config.coverage_percentile_max


def near_error_cluster(table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
    """In a hotspot cluster's region, or in a dense error neighbourhood: ``knn_error_rate`` is
    at least ``max(cluster_error_rate, min_cluster_lift * base error rate of the split)``."""
    in_cluster = table["hotspot_cluster"].notna().to_numpy()
    return in_cluster | (_col(table, "knn_error_rate") >= dense_error_rate(table, config))


def suspected_label_error(table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
    """Confident learning flags the label, the neighbourhood does not back it, and the model has
    learned the region, so that the data rather than the model is at fault.

    A ``label_issue`` unit whose nearest neighbours mostly carry its label
    (``knn_label_agreement >= label_error_max_agreement``) looks like its label: that is a model
    error, not a labelling one. One whose nearest reference (training) units the model classifies
    without conviction (``reference_margin < label_error_min_reference_margin``) sits where the
    model has not learned yet. Without features both conditions are off.
    """
    backed = _col(table, "knn_label_agreement") >= config.label_error_max_agreement
    unlearned = _col(table, "reference_margin") < config.label_error_min_reference_margin
    return table["label_issue"].to_numpy(dtype=bool) & ~backed & ~unlearned


def ambiguous(table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
    """The nearest neighbours disagree on the label and the model is uncertain.

    ``knn_label_agreement < ambiguous_max_agreement`` and ``entropy >= ambiguous_entropy``.
    Needs features (the neighbourhood); False without them.
    """
    agreement = _col(table, "knn_label_agreement")
    return (agreement < config.ambiguous_max_agreement) & (
        _col(table, "entropy") >= config.ambiguous_entropy
    )


def unstable(table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
    """Correctness flipped at least ``unstable_min_flips`` times or was forgotten
    ``unstable_min_forgetting`` times over the traced epochs (needs two epochs or more)."""
    flips = _col(table, "flips")
    forgetting = _col(table, "forgetting_events")
    return (flips >= config.unstable_min_flips) | (forgetting >= config.unstable_min_forgetting)


def conflicting_labels(table: pd.DataFrame) -> np.ndarray:
    """The same input (``input_hash``) is traced with another label."""
    return conflicting_label_mask(table)


def data_caused(table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
    """Suspected label error or conflicting labels: the data is the likely cause.

    An ambiguous input (`ambiguous`) is not enough: on clean splits of well-trained models its
    rule holds for most errors, so it cannot tell the data's fault from the model's.
    """
    return suspected_label_error(table, config) | conflicting_labels(table)


def fragile(table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
    """Low margin, out of coverage, near an error cluster, ambiguous, or unstable across epochs."""
    return (
        low_margin(table, config)
        | out_of_coverage(table, config)
        | near_error_cluster(table, config)
        | ambiguous(table, config)
        | unstable(table, config)
    )


def assign_categories(table: pd.DataFrame, config: AnalysisConfig) -> pd.Series:
    """The category of every unit (a ``str`` Series on ``table.index``).

    Args:
        table: the samples' columns (``input_hash``, ``label``), the signal columns and
            ``hotspot_cluster`` (nullable; null outside every hotspot cluster).
        config: the thresholds.
    """
    is_wrong = wrong(table)
    conditions = [
        ~is_wrong & ~fragile(table, config),
        ~is_wrong,
        is_wrong & data_caused(table, config),
        is_wrong & confident(table, config),
        is_wrong & near_error_cluster(table, config),
    ]
    choices = [
        "stable_coverage",
        "operational_coverage",
        "aleatoric_hotspot",
        "critical_hotspot",
        "hotspot",
    ]
    values = np.select(conditions, choices, default="recessive_hotspot")
    return pd.Series(values, index=table.index, name="category", dtype=str)


def category_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Share of each category per dataset and epoch (each row sums to 1).

    Args:
        table: the columns ``dataset``, ``epoch`` and ``category``.

    Returns:
        ``dataset, epoch`` and one ``<category>_ratio`` column per category, in
        ``RATIO_COLUMNS`` order, sorted by dataset and epoch.
    """
    if table.empty:
        columns = {"dataset": pd.Series(dtype=str), "epoch": pd.Series(dtype=np.int64)}
        return pd.DataFrame({**columns, **{c: pd.Series(dtype=np.float64) for c in RATIO_COLUMNS}})
    counts = pd.crosstab([table["dataset"], table["epoch"]], table["category"])
    counts = counts.reindex(columns=list(CATEGORIES), fill_value=0)
    ratios = counts.div(counts.sum(axis=1), axis=0)
    ratios.columns = list(RATIO_COLUMNS)
    ratios = ratios.reset_index()
    ratios.columns.name = None
    return ratios.astype({"epoch": np.int64, **{c: np.float64 for c in RATIO_COLUMNS}})
