"""Confident learning (Northcutt et al., 2021): flag units whose given label is likely wrong.

The steps follow the paper and cleanlab's default ``find_label_issues`` ("prune by noise rate"):

1. Per-class threshold ``t_j`` = mean ``p_j`` over the units labelled ``j`` (mean self-confidence).
2. Confident joint ``C[i, j]``: units labelled ``i`` whose probability of ``j`` reaches ``t_j``
   (with several such classes, the arg-max class). The diagonal is floored at 1, then ``C`` is
   calibrated so that row ``i`` sums to the number of units labelled ``i`` and ``C`` to ``n``,
   and rounded to integers keeping the row totals.
3. For each off-diagonal cell ``(i, j)``, the ``round(C[i, j])`` units labelled ``i`` with the
   largest ``p_j - p_i`` are flagged.
4. Units the model predicts as their given label are never flagged.

The probabilities must be out-of-sample for the flags to be trustworthy: this holds for an
evaluation split (the model did not train on it); on the training split the flags use in-sample
probabilities and are typically too few.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_THRESHOLD_SLACK = 1e-6  # as cleanlab: p_j >= t_j - slack counts as confident


def find_label_issues(labels: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """Return ``label_issue`` (bool), ``label_quality`` and ``suggested_label`` per unit.

    ``label_quality`` is the self-confidence ``p[label]`` (low = label more likely wrong).
    ``suggested_label`` is the predicted class for flagged units and the given label otherwise.
    """
    labels = np.asarray(labels, dtype=np.int64)
    proba = np.asarray(probabilities, dtype=np.float64)
    n, n_classes = proba.shape
    rows = np.arange(n)
    self_confidence = proba[rows, labels]
    prediction = proba.argmax(axis=1)
    issue = np.zeros(n, dtype=bool)
    if n > 0:
        joint = _calibrated_confident_joint(labels, proba)
        for i in range(n_classes):
            members = np.flatnonzero(labels == i)
            for j in np.flatnonzero(joint[i]):
                if j == i:
                    continue
                count = min(int(joint[i, j]), len(members))
                margin = proba[members, j] - proba[members, i]
                top = np.argpartition(-margin, count - 1)[:count]
                issue[members[top]] = True
        issue &= prediction != labels
    return pd.DataFrame(
        {
            "label_issue": issue,
            "label_quality": self_confidence,
            "suggested_label": np.where(issue, prediction, labels).astype(np.int64),
        }
    )


def confident_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Mean self-confidence of each class; ``inf`` for a class no unit is labelled with."""
    n_classes = probabilities.shape[1]
    counts = np.bincount(labels, minlength=n_classes)
    sums = np.zeros(n_classes)
    np.add.at(sums, labels, probabilities[np.arange(len(labels)), labels])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.inf)


def _calibrated_confident_joint(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Confident joint ``C[given, true]`` calibrated to the label counts, rounded to integers."""
    n_classes = proba.shape[1]
    confident = proba >= confident_thresholds(labels, proba) - _THRESHOLD_SLACK
    n_confident = confident.sum(axis=1)
    true_guess = np.where(n_confident > 1, proba.argmax(axis=1), confident.argmax(axis=1))
    keep = n_confident > 0
    joint = np.zeros((n_classes, n_classes))
    np.add.at(joint, (labels[keep], true_guess[keep]), 1.0)
    np.fill_diagonal(joint, np.maximum(joint.diagonal(), 1.0))
    label_counts = np.bincount(labels, minlength=n_classes)
    joint *= (label_counts / joint.sum(axis=1))[:, None]
    joint *= len(labels) / joint.sum()
    return _round_preserving_row_totals(joint)


def _round_preserving_row_totals(matrix: np.ndarray) -> np.ndarray:
    """Round to integers keeping each row's rounded total, as cleanlab does: round every entry,
    then move the entries whose rounding went furthest the other way by one until the row adds
    up."""
    out = np.rint(matrix)
    for row, values in zip(out, matrix):
        missing = int(np.rint(values.sum() - row.sum()))
        while missing:
            step = 1 if missing > 0 else -1
            order = np.argsort(values - row)[::-step][: min(abs(missing), len(row))]
            row[order] += step
            missing = int(np.rint(values.sum() - row.sum()))
    return out
