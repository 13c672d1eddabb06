"""Validation of classification batches: every bad input names its field."""

from __future__ import annotations

import numpy as np
import pytest

from ml_debugger.exceptions import TraceValidationError
from ml_debugger.tasks.classification import make_classification_batch
from ml_debugger.tasks.classification.batch import per_sample_loss


def batch(n: int = 4, c: int = 3, **overrides):
    rng = np.random.default_rng(0)
    args = dict(
        scores=rng.normal(size=(n, c)),
        labels=rng.integers(0, c, n),
        input_hashes=np.array([f"h{i}" for i in range(n)], dtype=object),
    )
    args.update(overrides)
    return make_classification_batch(args.pop("scores"), args.pop("labels"), **args)


def test_valid_batch_keeps_values_and_uses_hashes_as_default_ids() -> None:
    b = batch()
    assert len(b) == 4
    assert b.scores.dtype == np.float32 and b.scores.shape == (4, 3)
    assert list(b.input_ids) == ["h0", "h1", "h2", "h3"]
    assert b.nonfinite_rows == 0


def test_ids_of_any_form_become_strings() -> None:
    assert list(batch(input_ids=np.arange(4)).input_ids) == ["0", "1", "2", "3"]
    assert list(batch(input_ids=["a", "b", "c", "d"]).input_ids) == ["a", "b", "c", "d"]
    assert list(batch(input_ids=np.array([[1], [2], [3], [4]])).input_ids) == ["1", "2", "3", "4"]
    assert list(batch(input_ids=[1.0, 2.0, 3.0, 4.0]).input_ids) == ["1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(labels=np.array([0, 1, 2])), "labels has 3 rows but the model output has 4"),
        (dict(input_ids=np.arange(5)), "input_ids has 5 entries but the model output has 4"),
        (dict(labels=np.array([0, 1, 3, -1])), r"labels must be class indices in \[0, 3\).*\[-1, 3\]"),
        (dict(labels=np.eye(4, 3)), "labels must have shape \\(batch,\\)"),
        (dict(labels=np.array([0.5, 1, 2, 0])), "labels must be integer class indices"),
        (dict(scores=np.zeros((4, 3, 2))), r"logits\) must have shape \(batch, n_classes\)"),
        (dict(scores=np.array([["a"] * 3] * 4)), "must be numeric"),
        (dict(features=np.zeros((3, 8))), "features have shape \\(3, 8\\) but the model output has 4"),
        (dict(input_ids=[1.5, 2, 3, 4]), r"input_ids\[0\] must be an int or a string"),
        (dict(score_type="softmax"), "score_type must be one of"),
        (dict(scores=np.full((4, 3), 0.5), score_type="probabilities"), "not probability vectors"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(overrides: dict, message: str) -> None:
    with pytest.raises(TraceValidationError, match=message):
        batch(**overrides)


def test_nonfinite_rows_are_counted_not_rejected() -> None:
    scores = np.zeros((4, 3))
    scores[1, 0] = np.nan
    scores[3, 2] = np.inf
    b = batch(scores=scores)
    assert b.nonfinite_rows == 2
    assert np.isnan(b.scores[1, 0])


def test_binary_single_logit_becomes_two_columns() -> None:
    b = batch(scores=np.array([0.0, 2.0, -1.0, 3.0]), labels=np.array([0, 1, 0, 1]))
    assert b.scores.shape == (4, 2)
    p1 = np.exp(b.scores[:, 1]) / np.exp(b.scores).sum(axis=1)
    np.testing.assert_allclose(p1, 1 / (1 + np.exp(-np.array([0.0, 2.0, -1.0, 3.0]))), rtol=1e-6)


def test_features_are_flattened_and_copied() -> None:
    features = np.ones((4, 2, 3), dtype=np.float64)
    b = batch(features=features)
    features[:] = 7
    assert b.features.shape == (4, 6) and b.features.dtype == np.float32
    assert (b.features == 1).all()


def test_per_sample_loss_is_cross_entropy() -> None:
    scores = np.array([[2.0, 0.0, -1.0], [0.1, 0.2, 0.3]])
    labels = np.array([0, 2])
    expected = -np.log(np.exp(scores[[0, 1], labels]) / np.exp(scores).sum(axis=1))
    np.testing.assert_allclose(per_sample_loss(scores, labels, "logits"), expected, rtol=1e-9)
    probs = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(per_sample_loss(probs, labels, "probabilities"), expected, rtol=1e-9)
