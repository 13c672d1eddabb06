"""Heatmap data as tidy count tables, a pivot to a matrix, and a matplotlib plotting helper.

Every heatmap is a long DataFrame of unit counts with string column names, so it stores as
Parquet and serialises as JSON as is; only non-zero cells are listed:

- ``confusion``: ``dataset, epoch, label, prediction, count``;
- ``class_by_category``: ``dataset, epoch, label, category, count``;
- ``class_by_error_code``: ``dataset, epoch, label, code, count`` (a unit counts once per code
  it carries; units without a code are not counted);
- ``epoch_by_category``: ``dataset, epoch, category, count``.

`heatmap_matrix` turns one of them into the matrix to look at, e.g. ``heatmap_matrix(
heatmaps["confusion"], dataset="val")`` is the label x prediction confusion matrix of ``val``
(summed over the epochs selected).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml_debugger.evaluator.analysis.categories import CATEGORIES

HEATMAP_AXES = {
    "confusion": ("label", "prediction"),
    "class_by_category": ("label", "category"),
    "class_by_error_code": ("label", "code"),
    "epoch_by_category": ("epoch", "category"),
}
"""Heatmap name -> (row axis, column axis)."""
MAX_ANNOTATED = 400


def build_heatmaps(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """All heatmaps of the per-unit table, keyed as in ``HEATMAP_AXES``.

    Args:
        table: per-unit rows with ``dataset, epoch, label, prediction, category, error_codes``.
    """
    codes = table[["dataset", "epoch", "label", "error_codes"]].explode("error_codes")
    codes = codes.dropna(subset=["error_codes"]).rename(columns={"error_codes": "code"})
    return {
        "confusion": _count(table, ["dataset", "epoch", "label", "prediction"]),
        "class_by_category": _count(table, ["dataset", "epoch", "label", "category"]),
        "class_by_error_code": _count(codes, ["dataset", "epoch", "label", "code"]),
        "epoch_by_category": _count(table, ["dataset", "epoch", "category"]),
    }


def _count(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    counts = frame.groupby(keys, sort=True, observed=True).size().rename("count").reset_index()
    types = {"epoch": np.int64, "count": np.int64, "dataset": str}
    types |= {k: np.int64 for k in ("label", "prediction") if k in keys}
    types |= {k: str for k in ("category", "code") if k in keys}
    return counts.astype({k: v for k, v in types.items() if k in counts.columns})


def heatmap_matrix(
    heatmap: pd.DataFrame,
    *,
    dataset: str | None = None,
    epoch: int | None = None,
    rows: str | None = None,
    columns: str | None = None,
) -> pd.DataFrame:
    """Pivot a tidy heatmap into a count matrix (missing cells are 0).

    Args:
        heatmap: one of the tables of `build_heatmaps`.
        dataset, epoch: keep only these units (None: sum over all).
        rows, columns: the axes; by default the last two key columns (``HEATMAP_AXES``). Category columns follow the ``CATEGORIES`` order; for the
            confusion matrix rows and columns both list every class seen on either axis.
    """
    keys = [c for c in heatmap.columns if c != "count"]
    rows = rows or keys[-2]
    columns = columns or keys[-1]
    selected = heatmap
    if dataset is not None:
        selected = selected[selected["dataset"] == dataset]
    if epoch is not None:
        selected = selected[selected["epoch"] == epoch]
    matrix = selected.pivot_table(
        index=rows, columns=columns, values="count", aggfunc="sum", fill_value=0
    )
    if columns == "category":
        matrix = matrix.reindex(columns=list(CATEGORIES), fill_value=0)
    if {rows, columns} == {"label", "prediction"}:
        classes = sorted(set(matrix.index) | set(matrix.columns))
        matrix = matrix.reindex(index=classes, columns=classes, fill_value=0)
    return matrix.astype(np.int64)


def plot_heatmap(matrix: pd.DataFrame, ax: Any = None, *, normalize: bool = False) -> Any:
    """Draw a count matrix (e.g. from `heatmap_matrix`); return the Axes.

    Cells are annotated with their counts when the matrix has at most ``MAX_ANNOTATED`` cells.

    Args:
        matrix: rows x columns of counts.
        ax: a matplotlib Axes to draw on (a new figure when None).
        normalize: colour by each row's share instead of the raw counts.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'ml-debugger[plot]'``).
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "plot_heatmap needs matplotlib; install it with: pip install 'ml-debugger[plot]'"
        ) from exc
    if ax is None:
        _, ax = plt.subplots(figsize=(1 + 0.6 * matrix.shape[1], 1 + 0.5 * matrix.shape[0]))
    values = matrix.to_numpy(dtype=np.float64)
    if normalize:
        totals = values.sum(axis=1, keepdims=True)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(
        range(matrix.shape[1]), [str(c) for c in matrix.columns], rotation=45, ha="right"
    )
    ax.set_yticks(range(matrix.shape[0]), [str(r) for r in matrix.index])
    ax.set_xlabel(str(matrix.columns.name or ""))
    ax.set_ylabel(str(matrix.index.name or ""))
    for i in range(matrix.shape[0] if matrix.size <= MAX_ANNOTATED else 0):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix.iat[i, j]), ha="center", va="center", color="w", fontsize=8)
    ax.figure.colorbar(image, ax=ax)
    return ax
