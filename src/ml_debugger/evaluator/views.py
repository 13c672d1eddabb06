"""Views of a Result's per-unit table: which epochs a summary covers, and unit counts by group.

Every view says which dataset and epoch it covers (``dataset`` and ``epoch`` columns) and its
``ratio`` is a share of units.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from ml_debugger.exceptions import ConfigurationError

NO_CODE = "none"
SPLIT = ["dataset", "epoch"]


def latest_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of each dataset's latest epoch in ``frame`` (which has ``dataset`` and ``epoch``)."""
    latest = frame.groupby("dataset")["epoch"].transform("max")
    return frame[frame["epoch"] == latest]


def epochs_text(epochs: Iterable[int]) -> str:
    """``[0, 1, 2, 3, 5]`` as ``"0-3, 5"``."""
    values = sorted({int(e) for e in epochs})
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def unit_view(
    samples: pd.DataFrame,
    groupby: str | Sequence[str],
    adjustby: str | Sequence[str] | None,
) -> pd.DataFrame:
    """Units counted per dataset, epoch and ``groupby``; ``ratio`` is the share of the units of
    the same dataset, epoch and ``adjustby`` values.

    ``error_code`` groups by single codes: a unit counts once under each code it carries (so the
    ratios of several codes can add up to more than 1) and under ``"none"`` when it has none.
    """
    groupby = _names(groupby)
    adjust = _names(adjustby)
    columns = set(samples.columns) - {"error_codes"} | {"error_code"}
    unknown = [c for c in groupby + adjust if c not in columns]
    if unknown:
        raise ConfigurationError(f"cannot group by {unknown}; expected columns among {sorted(columns)}")
    missing = [c for c in adjust if c not in groupby]
    if missing:
        raise ConfigurationError(f"adjustby {missing} must also be in groupby {groupby}")
    keys = SPLIT + [c for c in groupby if c not in SPLIT]
    within = SPLIT + [c for c in adjust if c not in SPLIT]
    if "error_code" in within:
        raise ConfigurationError("adjustby cannot contain error_code: a unit may carry several codes")
    totals = samples.groupby(within, observed=True, dropna=False).size().rename("units")
    if "error_code" in keys:
        samples = samples.assign(
            error_code=[list(c) if len(c) else [NO_CODE] for c in samples["error_codes"]]
        ).explode("error_code")
    view = samples.groupby(keys, observed=True, dropna=False).size().rename("count").reset_index()
    view = view.merge(totals.reset_index(), on=within, how="left")
    view["ratio"] = view["count"] / view.pop("units")
    order = within + ["count"]
    view = view.sort_values(order, ascending=[True] * len(within) + [False], kind="stable")
    return view.reset_index(drop=True)


def _names(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
