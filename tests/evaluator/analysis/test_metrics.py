import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.preprocessing import label_binarize

from ml_debugger.evaluator.analysis.metrics import METRIC_KEYS, classification_metrics


def _softmax(logits):
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _data(n=600, n_classes=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), labels] += 1.5
    proba = _softmax(logits)
    return labels, proba, rng.random(n)


def test_multiclass_matches_sklearn():
    labels, proba, error_proba = _data()
    errors = proba.argmax(1) != labels
    error_proba = error_proba + 0.5 * errors  # informative but imperfect
    m = classification_metrics(labels, proba, error_proba)
    assert list(m) == list(METRIC_KEYS)
    assert m["counts"] == 600
    assert m["accuracy"] == pytest.approx((proba.argmax(1) == labels).mean())
    expected_auroc = roc_auc_score(labels, proba, multi_class="ovr", average="macro")
    assert m["auroc"] == pytest.approx(expected_auroc)
    onehot = label_binarize(labels, classes=range(5))
    assert m["auprc"] == pytest.approx(average_precision_score(onehot, proba, average="macro"))
    assert m["net_entropy_loss"] == pytest.approx(log_loss(labels, proba, normalize=False))
    assert m["net_entropy"] == pytest.approx(-(proba * np.log(proba)).sum())
    assert m["error_proba_auroc"] == pytest.approx(roc_auc_score(errors, error_proba))
    assert m["error_proba_auprc"] == pytest.approx(average_precision_score(errors, error_proba))
    assert 0.5 < m["error_proba_auroc"] < 1.0


@pytest.mark.parametrize("seed", [1, 2])
def test_binary_scores_are_sklearns_binary_scores_of_class_1(seed):
    labels, proba, error_proba = _data(n_classes=2, seed=seed)
    labels = np.where(np.random.default_rng(seed).random(len(labels)) < 0.2, 1, 0)  # imbalanced
    m = classification_metrics(labels, proba, error_proba)
    assert m["auroc"] == pytest.approx(roc_auc_score(labels, proba[:, 1]))
    assert m["auprc"] == pytest.approx(average_precision_score(labels, proba[:, 1]))
    macro = np.mean([average_precision_score(labels == c, proba[:, c]) for c in (0, 1)])
    assert abs(m["auprc"] - macro) > 0.05  # not the macro average over both classes


def test_absent_classes_are_left_out_of_the_macro_average():
    labels, proba, error_proba = _data(n_classes=4, seed=2)
    keep = labels != 3  # class 3 never labelled: no positives, cannot be scored
    labels, proba, error_proba = labels[keep], proba[keep], error_proba[keep]
    m = classification_metrics(labels, proba, error_proba)
    expected = np.mean([roc_auc_score(labels == c, proba[:, c]) for c in range(3)])
    assert m["auroc"] == pytest.approx(expected)
    expected_ap = np.mean([average_precision_score(labels == c, proba[:, c]) for c in range(3)])
    assert m["auprc"] == pytest.approx(expected_ap)


def test_undefined_cases_are_nan():
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    labels = np.zeros(3, dtype=np.int64)  # a single class and no errors
    m = classification_metrics(labels, proba, np.array([0.1, 0.2, 0.3]))
    assert m["accuracy"] == 1.0
    for key in ("auroc", "auprc", "error_proba_auroc", "error_proba_auprc"):
        assert math.isnan(m[key]), key
    all_wrong = classification_metrics(np.ones(3, dtype=np.int64), proba, np.array([0.1, 0.2, 0.3]))
    assert all_wrong["accuracy"] == 0.0
    assert math.isnan(all_wrong["error_proba_auroc"])


def test_empty_group():
    m = classification_metrics(np.zeros(0, dtype=np.int64), np.zeros((0, 3)), np.zeros(0))
    assert m["counts"] == 0
    assert math.isnan(m["accuracy"])


def test_zero_probability_on_the_label_is_clipped():
    m = classification_metrics(np.array([1]), np.array([[1.0, 0.0]]), np.array([0.5]))
    assert m["net_entropy_loss"] == pytest.approx(-np.log(1e-12))
    assert m["net_entropy"] == 0.0
