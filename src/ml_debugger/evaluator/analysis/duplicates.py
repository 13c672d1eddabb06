"""Duplicated inputs, found by ``input_hash``: leakage across splits and conflicting labels.

A unit's ``input_hash`` is the hash of the input as fed to the model, so two units with the same
hash saw the same input. Units with an empty or missing hash are never duplicates. The same input
traced at several epochs of one split is not a duplicate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def leaked_mask(samples: pd.DataFrame) -> np.ndarray:
    """True for each unit whose input is also in another dataset (split leakage).

    Args:
        samples: at least the columns ``input_hash`` and ``dataset``.
    """
    return _distinct_per_hash(samples, "dataset") > 1


def conflicting_label_mask(samples: pd.DataFrame) -> np.ndarray:
    """True for each unit whose input is traced elsewhere (any dataset) with a different label.

    Args:
        samples: at least the columns ``input_hash`` and ``label``.
    """
    return _distinct_per_hash(samples, "label") > 1


def _distinct_per_hash(samples: pd.DataFrame, column: str) -> np.ndarray:
    """Number of distinct ``column`` values among the units sharing each unit's hash (0 if none)."""
    hashes = samples["input_hash"]
    known = (hashes.notna() & (hashes.astype(str) != "")).to_numpy()
    counts = np.zeros(len(samples), dtype=np.int64)
    if known.any():
        subset = samples.loc[known, ["input_hash", column]]
        counts[known] = subset.groupby("input_hash")[column].transform("nunique").to_numpy()
    return counts
