"""The evaluator's input: de-duplicated, validated traces of one model version as arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SAMPLE_COLUMNS = ("input_id", "input_hash", "dataset", "epoch", "global_step", "label")


@dataclass(frozen=True)
class EvalData:
    """Classification traces ready for analysis.

    Row ``i`` of ``samples``, ``probabilities`` and ``features`` describe the same unit: one
    input of one dataset at one epoch (rows are already de-duplicated on
    ``(input_id, dataset, epoch)`` and rows with non-finite outputs are already removed).

    Attributes:
        samples: ``RangeIndex`` 0..n-1 and the columns of ``SAMPLE_COLUMNS``: ``input_id`` (str),
            ``input_hash`` (str), ``dataset`` (str, the traced ``dataset_type``), ``epoch`` (int64),
            ``global_step`` (nullable Int64), ``label`` (int64 in ``[0, n_classes)``).
        probabilities: ``(n, n_classes)`` float64, each row sums to 1.
        features: ``(n, d)`` float32 feature vectors, or ``None`` when none were traced.
    """

    samples: pd.DataFrame
    probabilities: np.ndarray
    features: np.ndarray | None

    def __post_init__(self) -> None:
        n = len(self.samples)
        missing = [c for c in SAMPLE_COLUMNS if c not in self.samples.columns]
        if missing:
            raise ValueError(f"EvalData.samples is missing columns {missing}")
        if self.probabilities.ndim != 2 or self.probabilities.shape[0] != n:
            raise ValueError(
                f"EvalData.probabilities must have shape ({n}, n_classes); got {self.probabilities.shape}"
            )
        if self.features is not None and (self.features.ndim != 2 or self.features.shape[0] != n):
            raise ValueError(f"EvalData.features must have shape ({n}, d); got {self.features.shape}")

    @property
    def n_classes(self) -> int:
        return int(self.probabilities.shape[1])

    @property
    def labels(self) -> np.ndarray:
        return self.samples["label"].to_numpy(dtype=np.int64)
