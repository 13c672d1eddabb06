"""Per-unit signals read directly from the predicted probabilities and the label."""

from __future__ import annotations

import numpy as np
import pandas as pd

PROBA_FLOOR = 1e-12
"""Probabilities are clipped at this value before taking a logarithm of them."""

BASIC_COLUMNS = ("prediction", "correct", "confidence", "margin", "entropy", "loss", "gold_proba")


def basic_signals(probabilities: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Return ``prediction, correct, confidence, margin, entropy, loss, gold_proba`` per row.

    Args:
        probabilities: ``(n, n_classes)`` rows summing to 1.
        labels: ``(n,)`` integer labels in ``[0, n_classes)``.

    ``prediction`` is the arg-max class (ties go to the lowest index), ``confidence`` the top-1
    probability, ``margin`` top-1 minus top-2 probability (top-2 is 0 with a single class),
    ``entropy`` the predictive entropy ``-sum p log p`` and ``loss`` the cross-entropy
    ``-log p[label]`` (nats, probabilities clipped at ``PROBA_FLOOR``), ``gold_proba`` ``p[label]``.
    """
    proba = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n, n_classes = proba.shape
    rows = np.arange(n)
    prediction = proba.argmax(axis=1)
    confidence = proba[rows, prediction]
    if n_classes > 1:
        second = np.partition(proba, n_classes - 2, axis=1)[:, n_classes - 2]
    else:
        second = np.zeros(n)
    gold_proba = proba[rows, labels]
    return pd.DataFrame(
        {
            "prediction": prediction.astype(np.int64),
            "correct": prediction == labels,
            "confidence": confidence,
            "margin": confidence - second,
            "entropy": entropy(proba),
            "loss": -np.log(np.clip(gold_proba, PROBA_FLOOR, None)),
            "gold_proba": gold_proba,
        }
    )


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Predictive entropy in nats of each row, with ``0 log 0 = 0``."""
    proba = np.asarray(probabilities, dtype=np.float64)
    logs = np.log(np.where(proba > 0, proba, 1.0))
    return -(proba * logs).sum(axis=1)

