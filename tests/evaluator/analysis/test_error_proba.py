import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml_debugger.evaluator._data import EvalData
from ml_debugger.evaluator.analysis.error_proba import (
    ERROR_FEATURES,
    _model,
    cross_fitted_error_proba,
    group_folds,
)
from ml_debugger.evaluator.analysis.signals import compute_signals


def _weak_region_traces(seed=0, n_train=1000, n_val=3000, n_classes=5):
    """Errors are planted independently of confidence, but concentrated in one feature region.

    Every unit's confidence is uniform in [0.5, 0.99] whether it is right or wrong, so confidence,
    margin and entropy carry no information about errors. A blob (20% of units, far from the
    class clusters) is wrong 60% of the time, elsewhere 5%: only the features tell.
    """
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    labels = rng.integers(0, n_classes, n)
    weak = rng.random(n) < 0.2
    centers = np.eye(n_classes, 16) * 4.0
    features = centers[labels] + rng.normal(size=(n, 16))
    features[weak] = rng.normal(size=(weak.sum(), 16)) + 6.0 * np.eye(16)[10]
    wrong = rng.random(n) < np.where(weak, 0.6, 0.05)
    predicted = np.where(wrong, (labels + rng.integers(1, n_classes, n)) % n_classes, labels)
    confidence = rng.uniform(0.5, 0.99, n)
    proba = np.tile(((1 - confidence) / (n_classes - 1))[:, None], (1, n_classes))
    proba[np.arange(n), predicted] = confidence
    samples = pd.DataFrame({
        "input_id": [f"u{i}" for i in range(n)],
        "input_hash": [f"h{i}" for i in range(n)],
        "dataset": ["train"] * n_train + ["val"] * n_val,
        "epoch": np.zeros(n, dtype=np.int64),
        "global_step": pd.array([0] * n, dtype="Int64"),
        "label": labels.astype(np.int64),
    })
    return EvalData(samples, proba, features.astype(np.float32)), wrong


def test_error_proba_beats_confidence_when_features_carry_the_signal():
    data, wrong = _weak_region_traces()
    table = compute_signals(data).table
    val = (data.samples["dataset"] == "val").to_numpy()
    assert (~table["correct"].to_numpy() == wrong).all()
    error_auroc = roc_auc_score(wrong[val], table["error_proba"][val])
    confidence_auroc = roc_auc_score(wrong[val], -table["confidence"][val])
    print(f"held-out AUROC: error_proba {error_auroc:.3f}, confidence {confidence_auroc:.3f}")
    assert confidence_auroc < 0.56
    assert error_auroc > 0.75
    assert error_auroc > confidence_auroc + 0.2


def _random_signals(n, seed=0):
    rng = np.random.default_rng(seed)
    signals = pd.DataFrame(rng.random((n, len(ERROR_FEATURES))), columns=list(ERROR_FEATURES))
    return signals, rng.random(n) < 0.3


def test_scores_are_out_of_fold_no_signal_gives_chance_auroc():
    signals, error = _random_signals(3000)
    out_of_fold = cross_fitted_error_proba(signals, error, np.arange(3000))
    assert abs(roc_auc_score(error, out_of_fold) - 0.5) < 0.04
    # the same model scored on its own training data would look informative: the test can fail
    in_sample = _model(0).fit(signals.to_numpy(), error).predict_proba(signals.to_numpy())[:, 1]
    assert roc_auc_score(error, in_sample) > 0.6


def test_other_epochs_of_an_input_never_leak():
    signals, error = _random_signals(2000, seed=1)
    epochs = 3  # each input traced 3 times with the same signals and the same outcome
    signals = pd.concat([signals] * epochs, ignore_index=True)
    error = np.tile(error, epochs)
    input_ids = np.tile(np.arange(2000), epochs).astype(str)
    grouped = cross_fitted_error_proba(signals, error, input_ids)
    assert abs(roc_auc_score(error, grouped) - 0.5) < 0.04
    # folds by row instead of by input_id would leak the other epochs into training
    by_row = cross_fitted_error_proba(signals, error, np.arange(len(error)))
    assert roc_auc_score(error, by_row) > 0.65


def test_group_folds_keep_groups_whole_and_spread_errors():
    rng = np.random.default_rng(2)
    groups = rng.integers(0, 500, 3000)
    error = rng.random(3000) < 0.05
    fold = group_folds(error, groups, 5, random_state=0)
    assert set(fold) == {0, 1, 2, 3, 4}
    assert (pd.Series(fold).groupby(groups).nunique() == 1).all()
    per_group_error = pd.Series(error).groupby(groups).any()
    fold_of_group = pd.Series(fold).groupby(groups).first()
    error_groups_per_fold = fold_of_group[per_group_error].value_counts()
    assert error_groups_per_fold.max() - error_groups_per_fold.min() <= 1


@pytest.mark.parametrize("n_errors", [0, 3])
def test_too_few_errors_fall_back_to_one_minus_confidence(n_errors):
    signals, _ = _random_signals(200, seed=3)
    error = np.zeros(200, dtype=bool)
    error[:n_errors] = True
    out = cross_fitted_error_proba(signals, error, np.arange(200), n_folds=5)
    np.testing.assert_allclose(out, 1 - signals["confidence"])


@pytest.mark.parametrize("n", [10, 12, 30])
def test_tiny_sets_are_scored(n):
    signals, _ = _random_signals(n, seed=5)
    error = np.arange(n) < 5
    out = cross_fitted_error_proba(signals, error, np.arange(n))
    assert np.isfinite(out).all() and ((out >= 0) & (out <= 1)).all()


def test_nan_signals_are_accepted():
    signals, error = _random_signals(1000, seed=4)
    signals["knn_error_rate"] = np.nan  # no features traced
    signals.loc[::7, "coverage_percentile"] = np.nan
    out = cross_fitted_error_proba(signals, error, np.arange(1000))
    assert np.isfinite(out).all() and ((out >= 0) & (out <= 1)).all()
