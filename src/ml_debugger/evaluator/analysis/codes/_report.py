"""Apply the registered codes to the per-unit table and summarise what they found."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ml_debugger.evaluator.analysis.codes._base import ErrorCode, registered_codes
from ml_debugger.evaluator.analysis.config import AnalysisConfig

CATALOG_COLUMNS = ("code", "name", "description", "category", "recommended_action")
ISSUE_COLUMNS = (
    "dataset",
    "epoch",
    "code",
    "name",
    "category",
    "count",
    "ratio",
    "affected_classes",
    "description",
    "recommended_action",
)


def code_catalog(codes: Sequence[ErrorCode] | None = None) -> pd.DataFrame:
    """One row per code (default: the registered classification codes), ``CATALOG_COLUMNS``."""
    codes = registered_codes() if codes is None else codes
    rows = [
        (code.id, code.name, code.description, code.category, code.recommended_action)
        for code in codes
    ]
    return pd.DataFrame(rows, columns=list(CATALOG_COLUMNS)).astype(str)


def detect_codes(
    table: pd.DataFrame, config: AnalysisConfig, codes: Sequence[ErrorCode] | None = None
) -> pd.DataFrame:
    """Boolean DataFrame on ``table.index``, one column per code id: which units carry it."""
    codes = registered_codes() if codes is None else codes
    masks = {code.id: code.detect(table, config) for code in codes}
    return pd.DataFrame(masks, index=table.index, columns=[code.id for code in codes], dtype=bool)


def codes_per_unit(masks: pd.DataFrame) -> pd.Series:
    """The ``error_codes`` column: for each unit the list of its code ids, in id order."""
    ids = np.asarray(masks.columns, dtype=object)
    values = masks.to_numpy(dtype=bool)
    lists = [ids[row].tolist() for row in values]
    return pd.Series(lists, index=masks.index, name="error_codes", dtype=object)


def issues_table(
    table: pd.DataFrame,
    masks: pd.DataFrame,
    config: AnalysisConfig,
    codes: Sequence[ErrorCode] | None = None,
) -> pd.DataFrame:
    """The issues found: one row per dataset, epoch and code that flags at least one of its units.

    ``count`` is the number of flagged units, ``ratio`` that count over the units of the dataset
    at that epoch, ``category`` the code's usual category and ``affected_classes`` the code's
    `ErrorCode.affected_classes` within them. Rows are sorted by dataset, epoch, then by count
    (largest first), then by code.
    """
    codes = registered_codes() if codes is None else codes
    rows = []
    for (dataset, epoch), positions in table.groupby(["dataset", "epoch"], sort=True).indices.items():
        subset = table.iloc[positions]
        for code in codes:
            mask = masks[code.id].to_numpy(dtype=bool)[positions]
            count = int(mask.sum())
            if count == 0:
                continue
            rows.append(
                {
                    "dataset": str(dataset),
                    "epoch": int(epoch),
                    "code": code.id,
                    "name": code.name,
                    "category": code.category,
                    "count": count,
                    "ratio": count / len(positions),
                    "affected_classes": code.affected_classes(subset, mask, config),
                    "description": code.description,
                    "recommended_action": code.recommended_action,
                }
            )
    issues = pd.DataFrame(rows, columns=list(ISSUE_COLUMNS))
    types = {"epoch": np.int64, "count": np.int64, "ratio": np.float64}
    if issues.empty:
        return issues.astype(types)
    issues = issues.sort_values(["dataset", "epoch", "count", "code"], ascending=[True, True, False, True])
    return issues.reset_index(drop=True).astype(types)
