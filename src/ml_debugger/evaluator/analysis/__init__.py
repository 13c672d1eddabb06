"""The classification analysis: from traces (`EvalData`) to every table of a Result.

``analyze`` computes the per-unit signals, clusters the errors into hotspots, assigns each unit
its issue category and error codes, and builds the metrics, category, issue, hotspot, heatmap
and code-catalog tables. Every table stores as Parquet as is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ml_debugger.evaluator._data import EvalData
from ml_debugger.evaluator.analysis.categories import assign_categories, category_ratios
from ml_debugger.evaluator.analysis.codes import (
    code_catalog,
    codes_per_unit,
    detect_codes,
    issues_table,
)
from ml_debugger.evaluator.analysis.config import AnalysisConfig
from ml_debugger.evaluator.analysis.heatmaps import build_heatmaps
from ml_debugger.evaluator.analysis.hotspots import find_hotspots
from ml_debugger.evaluator.analysis.metrics import METRIC_KEYS, classification_metrics
from ml_debugger.evaluator.analysis.signals import compute_signals

__all__ = ["Analysis", "AnalysisConfig", "analyze"]

logger = logging.getLogger(__name__)

_STEPS = ("signals", "hotspots", "categories", "codes", "tables")


@dataclass(frozen=True)
class Analysis:
    """Everything the classification analysis found.

    Attributes:
        samples: one row per unit: the samples' columns, every signal column, ``category``
            (str), ``error_codes`` (list of code ids) and ``hotspot_cluster`` (nullable Int64).
        metrics: one row per dataset and epoch: ``dataset, epoch`` and the metric columns.
        categories: one row per dataset and epoch: ``dataset, epoch`` and the six
            ``<category>_ratio`` columns (each row sums to 1).
        issues: one row per dataset and code found (see `codes.issues_table`).
        hotspots: one row per hotspot cluster (see `hotspots.find_hotspots`).
        heatmaps: tidy count tables keyed ``confusion``, ``class_by_category``,
            ``class_by_error_code``, ``epoch_by_category`` (see `heatmaps`).
        codes: the catalog of every classification code (``code, name, description,
            category, recommended_action``).
    """

    samples: pd.DataFrame
    metrics: pd.DataFrame
    categories: pd.DataFrame
    issues: pd.DataFrame
    hotspots: pd.DataFrame
    heatmaps: dict[str, pd.DataFrame]
    codes: pd.DataFrame


def analyze(
    data: EvalData, config: AnalysisConfig | None = None, *, progress: bool = False
) -> Analysis:
    """Analyse classification traces.

    Args:
        data: the de-duplicated traces of one model version.
        config: thresholds and parameters (defaults: `AnalysisConfig()`).
        progress: show a progress bar (tqdm) over the steps.
    """
    config = AnalysisConfig() if config is None else config
    with tqdm(total=len(_STEPS), desc="analysis", disable=not progress, leave=False) as bar:
        with _step(bar, "signals"):
            signals = compute_signals(
                data,
                reference_dataset=config.reference_dataset,
                k_neighbors=config.k_neighbors,
                n_components=config.n_components,
                n_folds=config.n_folds,
                random_state=config.random_state,
                progress=progress,
            )
            table = pd.concat([data.samples, signals.table], axis=1)
        with _step(bar, "hotspots"):
            table["hotspot_cluster"], hotspots = find_hotspots(table, signals.embedding, config)
        with _step(bar, "categories"):
            table["category"] = assign_categories(table, config)
        with _step(bar, "codes"):
            masks = detect_codes(table, config)
            table["error_codes"] = codes_per_unit(masks)
        with _step(bar, "tables"):
            columns = [*data.samples.columns, *signals.table.columns]
            table = table[[*columns, "category", "error_codes", "hotspot_cluster"]]
            result = Analysis(
                samples=table,
                metrics=_metrics(table, data.probabilities),
                categories=category_ratios(table),
                issues=issues_table(table, masks, config),
                hotspots=hotspots,
                heatmaps=build_heatmaps(table),
                codes=code_catalog(),
            )
    return result


def _metrics(table: pd.DataFrame, probabilities: np.ndarray) -> pd.DataFrame:
    """`classification_metrics` per dataset and epoch."""
    labels = table["label"].to_numpy(dtype=np.int64)
    error_proba = table["error_proba"].to_numpy(dtype=np.float64)
    rows = []
    for (dataset, epoch), positions in table.groupby(["dataset", "epoch"], sort=True).indices.items():
        values = classification_metrics(
            labels[positions], probabilities[positions], error_proba[positions]
        )
        rows.append({"dataset": str(dataset), "epoch": int(epoch), **values})
    frame = pd.DataFrame(rows, columns=["dataset", "epoch", *METRIC_KEYS])
    return frame.astype({"epoch": np.int64, **{key: np.float64 for key in METRIC_KEYS}, "counts": np.int64})


@contextmanager
def _step(bar: tqdm, name: str) -> Iterator[None]:
    """Log a step's wall time and advance the progress bar when it ends."""
    bar.set_postfix_str(name)
    start = time.perf_counter()
    yield
    logger.debug("analysis step %s took %.2f s", name, time.perf_counter() - start)
    bar.update(1)
