"""Classification metrics of one group of units (one dataset at one epoch)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from ml_debugger.evaluator.analysis.basic import PROBA_FLOOR, entropy

METRIC_KEYS = (
    "counts",
    "accuracy",
    "auroc",
    "auprc",
    "net_entropy_loss",
    "net_entropy",
    "error_proba_auroc",
    "error_proba_auprc",
)


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, error_proba: np.ndarray
) -> dict[str, float | int]:
    """Return the classification metrics of a group of units, keyed by ``METRIC_KEYS``.

    ``auroc`` / ``auprc`` are the macro averages of the one-vs-rest ROC AUC / average precision
    over the classes that have at least one positive and one negative unit, each scored with its
    own probability column; for a two-class model they are scikit-learn's binary scores of the
    positive class 1 (``roc_auc_score(y, p[:, 1])``, ``average_precision_score(y, p[:, 1])``). ``net_entropy_loss`` is the summed cross-entropy and ``net_entropy``
    the summed predictive entropy (nats). ``error_proba_auroc`` / ``error_proba_auprc`` score
    ``error_proba`` against "the unit is misclassified". Undefined values are NaN.
    """
    labels = np.asarray(labels, dtype=np.int64)
    proba = np.asarray(probabilities, dtype=np.float64)
    n = len(labels)
    if n == 0:
        return {key: (0 if key == "counts" else float("nan")) for key in METRIC_KEYS}
    gold = proba[np.arange(n), labels]
    errors = proba.argmax(axis=1) != labels
    if proba.shape[1] == 2:
        auroc, auprc = binary_scores(labels == 1, proba[:, 1])
    else:
        auroc, auprc = _macro_ovr(labels, proba)
    err_auroc, err_auprc = binary_scores(errors, np.asarray(error_proba, dtype=np.float64))
    return {
        "counts": n,
        "accuracy": float(1.0 - errors.mean()),
        "auroc": auroc,
        "auprc": auprc,
        "net_entropy_loss": float(-np.log(np.clip(gold, PROBA_FLOOR, None)).sum()),
        "net_entropy": float(entropy(proba).sum()),
        "error_proba_auroc": err_auroc,
        "error_proba_auprc": err_auprc,
    }


def binary_scores(positive: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """ROC AUC and average precision of ``score`` for ``positive``; NaN when one side is empty."""
    n_pos = int(positive.sum())
    if n_pos == 0 or n_pos == len(positive):
        return float("nan"), float("nan")
    return float(roc_auc_score(positive, score)), float(average_precision_score(positive, score))


def _macro_ovr(labels: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """Macro one-vs-rest ROC AUC and average precision over the classes that can be scored."""
    aurocs, auprcs = [], []
    for c in np.unique(labels):
        auroc, auprc = binary_scores(labels == c, proba[:, c])
        if not np.isnan(auroc):
            aurocs.append(auroc)
            auprcs.append(auprc)
    if not aurocs:
        return float("nan"), float("nan")
    return float(np.mean(aurocs)), float(np.mean(auprcs))
