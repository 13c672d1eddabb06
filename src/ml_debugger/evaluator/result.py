"""Result: the stored outcome of one evaluation, as pandas tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ml_debugger.evaluator.analysis.heatmaps import heatmap_matrix, plot_heatmap
from ml_debugger.evaluator.coverage_note import MISSING_COLUMNS
from ml_debugger.evaluator.summary import format_summary, summary_parts
from ml_debugger.evaluator.views import latest_rows, unit_view
from ml_debugger.exceptions import ConfigurationError

CATEGORY_COLUMNS = [
    "dataset", "stable_coverage_ratio", "operational_coverage_ratio", "hotspot_ratio",
    "recessive_hotspot_ratio", "critical_hotspot_ratio", "aleatoric_hotspot_ratio",
]
HEATMAP_PREFIX = "heatmap_"


class Result:
    """One evaluation of a model version: metrics, issue categories, error codes, hotspots.

    Every method returns pandas objects. Tables cover the epochs evaluated (``result.epochs``);
    the summaries show each dataset's latest evaluated epoch (``result.summary_epochs``) unless
    ``by_epoch=True``. Tables of this SDK's own carry ``dataset`` and ``epoch`` columns; the two
    reference summaries keep exactly the reference columns, and ``get_summary`` prints their epochs.
    """

    def __init__(self, meta: dict[str, Any], tables: dict[str, pd.DataFrame]) -> None:
        self.meta = meta
        self._tables = tables

    def __repr__(self) -> str:
        return (
            f"Result(name={self.name!r}, model={self.meta['model_name']!r}, "
            f"version={self.meta['version_name']!r}, epochs={self.epochs})"
        )

    @property
    def name(self) -> str:
        return str(self.meta["result_name"])

    @property
    def epochs(self) -> list[int]:
        """Every evaluated epoch."""
        return [int(e) for e in self.meta["epochs"]]

    @property
    def summary_epochs(self) -> dict[str, int]:
        """The epoch each dataset's summary row describes: its latest evaluated epoch."""
        metrics = self._tables["metrics"]
        return {str(d): int(e) for d, e in metrics.groupby("dataset")["epoch"].max().items()}

    @property
    def missing_datasets(self) -> pd.DataFrame:
        """Datasets with committed traces but no rows at some evaluated epoch, and what that
        makes unavailable (``dataset, missing_epochs, committed_epochs, unavailable``)."""
        return pd.DataFrame(self.meta.get("missing_datasets", []), columns=list(MISSING_COLUMNS))

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every stored table by name (a copy of the mapping)."""
        return dict(self._tables)

    def _summary(self, frame: pd.DataFrame, columns: list[str], by_epoch: bool) -> pd.DataFrame:
        if by_epoch:
            return frame[columns[:1] + ["epoch"] + columns[1:]].reset_index(drop=True)
        return latest_rows(frame)[columns].reset_index(drop=True)

    def metrics_summary(self, by_epoch: bool = False) -> pd.DataFrame:
        """Per dataset, the task's metrics: exactly the reference columns for classification
        (counts, accuracy, auroc, auprc, net_entropy_loss, net_entropy, error_proba_auroc,
        error_proba_auprc), each dataset at its latest evaluated epoch (``summary_epochs``);
        ``by_epoch=True`` adds ``epoch`` and lists every evaluated epoch.
        """
        metrics = self._tables["metrics"]
        columns = ["dataset", *(c for c in metrics.columns if c not in ("dataset", "epoch"))]
        return self._summary(metrics, columns, by_epoch)

    def issue_category_summary(self, by_epoch: bool = False) -> pd.DataFrame:
        """Per dataset: the share of units in each of the six issue categories (rows sum to 1).

        Epochs as ``metrics_summary``.
        """
        return self._summary(self._tables["categories"], CATEGORY_COLUMNS, by_epoch)

    def get_issues(self, by_epoch: bool = False) -> pd.DataFrame:
        """The issues found: one row per dataset, epoch and error code, with the recommended action.

        ``count`` is units carrying the code and ``ratio`` their share of the dataset's units at
        that epoch. Each dataset's latest evaluated epoch; ``by_epoch=True`` for every epoch.
        """
        issues = self._tables["issues"]
        return (issues if by_epoch else latest_rows(issues)).reset_index(drop=True)

    def get_samples(self) -> pd.DataFrame:
        """The per-unit table: ids, label, prediction, category, error codes, cluster and every signal."""
        return self._tables["samples"].copy()

    def get_hotspots(self) -> pd.DataFrame:
        """Hotspot clusters in feature space, latest epoch first, then by impact (error_coverage x lift)."""
        return self._tables["hotspots"].copy()

    def get_error_codes(self) -> pd.DataFrame:
        """The catalog of error codes: id, name, description, usual category, recommended action."""
        return self._tables["codes"].copy()

    def heatmap_names(self) -> list[str]:
        return sorted(k[len(HEATMAP_PREFIX):] for k in self._tables if k.startswith(HEATMAP_PREFIX))

    def get_heatmap(
        self, name: str, *, matrix: bool = False, dataset: str | None = None, epoch: int | None = None
    ) -> pd.DataFrame:
        """A heatmap: ``confusion``, ``class_by_category``, ``class_by_error_code``, ``epoch_by_category``.

        By default the tidy table of counts (one row per cell, per dataset and epoch); with
        ``matrix=True`` the count matrix, summed over the datasets/epochs not selected.
        """
        key = HEATMAP_PREFIX + name
        if key not in self._tables:
            raise ConfigurationError(f"unknown heatmap {name!r}; expected one of {self.heatmap_names()}")
        table = self._tables[key].copy()
        return heatmap_matrix(table, dataset=dataset, epoch=epoch) if matrix else table

    def plot_heatmap(self, name: str, *, dataset: str | None = None, epoch: int | None = None,
                     normalize: bool = False, ax: Any = None) -> Any:
        """Draw a heatmap's count matrix with matplotlib (``pip install matplotlib``); return the Axes."""
        return plot_heatmap(self.get_heatmap(name, matrix=True, dataset=dataset, epoch=epoch), ax, normalize=normalize)

    def get_view(
        self,
        groupby: str | Sequence[str] = ("category", "error_code"),
        adjustby: str | Sequence[str] | None = None,
        *,
        by_epoch: bool = False,
    ) -> pd.DataFrame:
        """Count units per dataset, epoch and ``groupby`` columns; ``ratio`` is their share of the
        units of the same dataset, epoch and ``adjustby`` values.

        Columns ``dataset, epoch, <groupby>, count, ratio``. ``error_code`` groups by single codes:
        a unit counts once under each code it carries (ratios of codes can add up to more than
        1) and under ``"none"`` without one. Each dataset's latest evaluated epoch;
        ``by_epoch=True`` for every epoch.
        """
        samples = self._tables["samples"]
        return unit_view(samples if by_epoch else latest_rows(samples), groupby, adjustby)

    def get_summary(self) -> dict[str, pd.DataFrame]:
        """Print what a user needs first, and return its tables.

        Prints the datasets and epochs covered, metrics, issue categories, the top hotspots,
        error codes per category, every issue's recommended action in full, and the datasets
        missing at some evaluated epoch. Returns ``metrics``, ``issue_categories``,
        ``error_codes_by_category``, ``hotspots`` and ``issues``, each dataset at its latest
        evaluated epoch (``summary_epochs``).
        """
        parts = summary_parts(self)
        print(format_summary(self, parts))
        return parts
