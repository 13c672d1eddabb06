import numpy as np
import pytest
from cleanlab.count import get_confident_thresholds
from cleanlab.filter import find_label_issues as cleanlab_find_label_issues

from ml_debugger.evaluator.analysis.label_issues import confident_thresholds, find_label_issues


def _noisy_mixture(seed, *, n=3000, n_classes=5, separation=1.5, noise=0.10, weights=None,
                   kind="symmetric"):
    """Bayes posterior of a Gaussian mixture (out-of-sample by construction), ``noise`` of the
    labels flipped: to a random other class (symmetric) or to the next class (class-conditional)."""
    rng = np.random.default_rng(seed)
    true = rng.choice(n_classes, size=n, p=weights)
    centers = rng.normal(size=(n_classes, 8)) * separation
    x = centers[true] + rng.normal(size=(n, 8))
    logits = -0.5 * ((x[:, None, :] - centers[None]) ** 2).sum(axis=2)
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    flipped = rng.random(n) < noise
    labels = true.copy()
    shift = rng.integers(1, n_classes, flipped.sum()) if kind == "symmetric" else 1
    labels[flipped] = (true[flipped] + shift) % n_classes
    return labels, proba, true, flipped


def _recall_precision(flagged, flipped):
    return flagged[flipped].mean(), flipped[flagged].mean()


@pytest.mark.parametrize(
    "seed, separation, weights",
    [
        (0, 1.5, None),
        (1, 1.0, None),
        (2, 3.0, None),
        (3, 1.5, [0.5, 0.2, 0.15, 0.1, 0.05]),  # imbalanced classes
    ],
)
def test_planted_label_noise_is_found_at_least_as_well_as_cleanlab(seed, separation, weights):
    labels, proba, true, flipped = _noisy_mixture(seed, separation=separation, weights=weights)
    result = find_label_issues(labels, proba)
    flagged = result["label_issue"].to_numpy()
    recall, precision = _recall_precision(flagged, flipped)
    reference = cleanlab_find_label_issues(labels, proba)
    ref_recall, ref_precision = _recall_precision(reference, flipped)
    print(
        f"separation={separation} weights={weights}: recall {recall:.3f} precision {precision:.3f}"
        f" | cleanlab recall {ref_recall:.3f} precision {ref_precision:.3f}"
    )
    assert recall >= ref_recall
    assert precision >= ref_precision
    assert recall > 0.85
    if separation >= 1.5:
        assert precision > 0.75
    # the suggested label is the true one for almost every noisy label found
    caught = flagged & flipped
    assert (result["suggested_label"].to_numpy()[caught] == true[caught]).mean() > 0.9


@pytest.mark.parametrize("noise", [0.05, 0.1, 0.2, 0.3])
@pytest.mark.parametrize("kind", ["symmetric", "class_conditional"])
def test_flags_match_cleanlab_on_symmetric_and_class_conditional_noise(kind, noise):
    labels, proba, _, flipped = _noisy_mixture(7, separation=2.0, noise=noise, kind=kind)
    recall, precision = _recall_precision(find_label_issues(labels, proba)["label_issue"].to_numpy(), flipped)
    ref_recall, ref_precision = _recall_precision(cleanlab_find_label_issues(labels, proba), flipped)
    print(f"{kind} {noise:.0%}: recall {recall:.3f} precision {precision:.3f}"
          f" | cleanlab recall {ref_recall:.3f} precision {ref_precision:.3f}")
    assert recall >= ref_recall and precision >= ref_precision
    # the same units, not only the same rates
    np.testing.assert_array_equal(
        find_label_issues(labels, proba)["label_issue"].to_numpy(), cleanlab_find_label_issues(labels, proba)
    )


def test_thresholds_are_cleanlabs():
    labels, proba, _, _ = _noisy_mixture(4, n=500)
    np.testing.assert_allclose(
        confident_thresholds(labels, proba), get_confident_thresholds(labels, proba)
    )
    present = labels != 2
    thresholds = confident_thresholds(labels[present], proba[present])
    assert thresholds[2] == np.inf  # no unit labelled 2: never confidently class 2
    expected = proba[labels == 0, 0].mean()
    assert thresholds[0] == pytest.approx(expected)


def test_quality_and_suggestion_columns():
    labels, proba, _, _ = _noisy_mixture(5, n=800)
    result = find_label_issues(labels, proba)
    assert result["label_issue"].dtype == bool
    assert result["suggested_label"].dtype == np.int64
    np.testing.assert_allclose(result["label_quality"], proba[np.arange(len(labels)), labels])
    issue = result["label_issue"].to_numpy()
    assert (result["suggested_label"].to_numpy()[~issue] == labels[~issue]).all()
    assert (result["suggested_label"].to_numpy()[issue] == proba[issue].argmax(1)).all()
    # a unit predicted as its label is never flagged
    assert (proba[issue].argmax(1) != labels[issue]).all()


def test_clean_labels_and_confident_model_flag_nothing():
    labels, proba, true, _ = _noisy_mixture(6, separation=4.0, noise=0.0)
    assert not find_label_issues(labels, proba)["label_issue"].any()


def test_empty_and_single_class_inputs():
    empty = find_label_issues(np.zeros(0, dtype=np.int64), np.zeros((0, 3)))
    assert len(empty) == 0
    one_class = find_label_issues(np.zeros(4, dtype=np.int64), np.tile([0.9, 0.1], (4, 1)))
    assert not one_class["label_issue"].any()
