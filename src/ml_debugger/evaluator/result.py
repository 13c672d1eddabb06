"""Result: the stored outcome of one evaluation, as pandas tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ml_debugger.evaluator.analysis.heatmaps import heatmap_matrix, plot_heatmap
from ml_debugger.exceptions import ConfigurationError

CATEGORY_COLUMNS = [
    "dataset", "stable_coverage_ratio", "operational_coverage_ratio", "hotspot_ratio",
    "recessive_hotspot_ratio", "critical_hotspot_ratio", "aleatoric_hotspot_ratio",
]
HEATMAP_PREFIX = "heatmap_"
NO_CODE = "none"


class Result:
    """One evaluation of a model version: metrics, issue categories, error codes, hotspots.

    Every method returns pandas objects. Tables cover the epochs evaluated (``result.epochs``);
    the reference-compatible summaries show each dataset's latest evaluated epoch unless
    ``by_epoch=True``.
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
        return [int(e) for e in self.meta["epochs"]]

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every stored table by name (a copy of the mapping)."""
        return dict(self._tables)

    def _latest_per_dataset(self, frame: pd.DataFrame, columns: list[str], by_epoch: bool) -> pd.DataFrame:
        if by_epoch:
            return frame[columns[:1] + ["epoch"] + columns[1:]].reset_index(drop=True)
        latest = frame.groupby("dataset")["epoch"].transform("max")
        return frame.loc[frame["epoch"] == latest, columns].reset_index(drop=True)

    def metrics_summary(self, by_epoch: bool = False) -> pd.DataFrame:
        """Per dataset, the task's metrics (classification: counts, accuracy, auroc, auprc,
        net_entropy_loss, net_entropy, error_proba_auroc, error_proba_auprc)."""
        metrics = self._tables["metrics"]
        columns = ["dataset", *(c for c in metrics.columns if c not in ("dataset", "epoch"))]
        return self._latest_per_dataset(metrics, columns, by_epoch)

    def issue_category_summary(self, by_epoch: bool = False) -> pd.DataFrame:
        """Per dataset: the share of units in each of the six issue categories (rows sum to 1)."""
        return self._latest_per_dataset(self._tables["categories"], CATEGORY_COLUMNS, by_epoch)

    def get_issues(self, by_epoch: bool = False) -> pd.DataFrame:
        """The issues found: one row per dataset and error code, with the recommended action.

        Each dataset's latest evaluated epoch, like ``metrics_summary()``; ``by_epoch=True`` lists
        every evaluated epoch (with an ``epoch`` column).
        """
        issues = self._tables["issues"]
        if by_epoch:
            return issues.copy()
        latest = issues.groupby("dataset")["epoch"].transform("max")
        return issues[issues["epoch"] == latest].drop(columns="epoch").reset_index(drop=True)

    def get_samples(self) -> pd.DataFrame:
        """The per-unit table: ids, label, prediction, category, error codes, cluster and every signal."""
        return self._tables["samples"].copy()

    def get_hotspots(self) -> pd.DataFrame:
        """Clusters of errors in feature space, largest share of errors first."""
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
    ) -> pd.DataFrame:
        """Count units grouped by any per-unit columns; ``ratio`` is normalised within ``adjustby``.

        ``error_code`` groups by single codes (a unit with several codes counts once per code; a
        unit with none counts under ``"none"``). Without ``adjustby`` the ratio is over all rows.
        Every evaluated epoch is counted; group by ``epoch`` to tell them apart.
        """
        return _view(self._tables["samples"], groupby, adjustby)

    def get_summary(self) -> dict[str, pd.DataFrame]:
        """Print metrics, issue categories and the error codes of each category; return them.

        Like ``metrics_summary()``, every table covers each dataset's latest evaluated epoch.
        """
        names = self._tables["codes"].set_index("code")["name"]
        samples = self._tables["samples"]
        latest = samples[samples["epoch"] == samples.groupby("dataset")["epoch"].transform("max")]
        by_category = _view(latest, ["dataset", "category", "error_code"], ["dataset", "category"])
        by_category.insert(3, "name", by_category["error_code"].map(names).fillna(""))
        parts = {
            "metrics": self.metrics_summary(),
            "issue_categories": self.issue_category_summary(),
            "error_codes_by_category": by_category,
        }
        titles = {
            "metrics": "Metrics",
            "issue_categories": "Issue categories",
            "error_codes_by_category": "Error codes per category (ratio within the category)",
        }
        with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 4):
            print(f"== {self.meta['model_name']}/{self.meta['version_name']} · result {self.name} · epochs {self.epochs}")
            for key, frame in parts.items():
                print(f"\n-- {titles[key]}\n{frame.to_string(index=False)}")
        return parts


def _view(samples: pd.DataFrame, groupby: str | Sequence[str], adjustby: str | Sequence[str] | None) -> pd.DataFrame:
    groupby = [groupby] if isinstance(groupby, str) else list(groupby)
    adjust = [] if adjustby is None else [adjustby] if isinstance(adjustby, str) else list(adjustby)
    if "error_code" in groupby + adjust:
        samples = samples.assign(
            error_code=[list(c) if len(c) else [NO_CODE] for c in samples["error_codes"]]
        ).explode("error_code")
    unknown = [c for c in groupby + adjust if c not in samples.columns or c == "error_codes"]
    if unknown:
        valid = sorted(c for c in samples.columns if c != "error_codes") + ["error_code"]
        raise ConfigurationError(f"cannot group by {unknown}; expected columns among {sorted(set(valid))}")
    missing = [c for c in adjust if c not in groupby]
    if missing:
        raise ConfigurationError(f"adjustby {missing} must also be in groupby {groupby}")
    view = samples.groupby(groupby, observed=True, dropna=False).size().rename("count").reset_index()
    totals = view.groupby(adjust)["count"].transform("sum") if adjust else view["count"].sum()
    view["ratio"] = view["count"] / totals
    return view.sort_values(adjust + ["count"], ascending=[True] * len(adjust) + [False]).reset_index(drop=True)
