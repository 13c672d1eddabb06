import numpy as np
import pytest

from ml_debugger.evaluator.analysis.basic import basic_signals, entropy


def test_hand_computed_rows():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.5, 0.0]])
    labels = np.array([0, 1, 1])
    table = basic_signals(proba, labels)
    assert table["prediction"].tolist() == [0, 2, 0]
    assert table["prediction"].dtype == np.int64
    assert table["correct"].tolist() == [True, False, False]
    np.testing.assert_allclose(table["confidence"], [0.7, 0.6, 0.5])
    np.testing.assert_allclose(table["margin"], [0.5, 0.3, 0.0])
    np.testing.assert_allclose(table["gold_proba"], [0.7, 0.3, 0.5])
    np.testing.assert_allclose(table["loss"], -np.log([0.7, 0.3, 0.5]))
    expected_entropy = [
        -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)),
        -(0.1 * np.log(0.1) + 0.3 * np.log(0.3) + 0.6 * np.log(0.6)),
        np.log(2.0),
    ]
    np.testing.assert_allclose(table["entropy"], expected_entropy)


def test_zero_gold_probability_is_clipped_not_infinite():
    table = basic_signals(np.array([[1.0, 0.0]]), np.array([1]))
    assert table["loss"].iloc[0] == pytest.approx(-np.log(1e-12))
    assert table["entropy"].iloc[0] == 0.0


def test_matches_scipy_entropy_on_random_rows():
    from scipy.stats import entropy as scipy_entropy

    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(7), size=200)
    np.testing.assert_allclose(entropy(proba), scipy_entropy(proba, axis=1))
    labels = rng.integers(0, 7, 200)
    table = basic_signals(proba, labels)
    top2 = np.sort(proba, axis=1)[:, -2:]
    np.testing.assert_allclose(table["margin"], top2[:, 1] - top2[:, 0])
    assert (table["correct"] == (proba.argmax(1) == labels)).all()
