"""The aleatoric category blames the data only where the data is at fault.

Measured against planted label noise (the truth) and against cleanlab's ``find_label_issues`` run
on the same probabilities: the category must be at least as precise, and rare on clean labels
or where the model has not learned the region yet.
"""

import numpy as np
import pytest
from cleanlab.filter import find_label_issues as cleanlab_find_label_issues

from ml_debugger.evaluator._data import EvalData
from ml_debugger.evaluator.analysis import analyze

from .planted import make_planted


def _precision_recall(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hits = (flagged & truth).sum()
    return hits / max(flagged.sum(), 1), hits / max(truth.sum(), 1)


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.3])
@pytest.mark.parametrize("noise", ["symmetric", "class_conditional"])
def test_aleatoric_is_at_least_as_precise_as_cleanlab_on_planted_noise(noise, rate):
    planted = make_planted(label_noise=rate, noise=noise, n_conflicts=0, seed=2)
    samples = analyze(planted.data).samples
    for dataset in ("train", "val"):
        rows = (samples["dataset"] == dataset).to_numpy()
        truth = planted.label_noise[rows]
        aleatoric = (samples["category"][rows] == "aleatoric_hotspot").to_numpy()
        reference = cleanlab_find_label_issues(planted.data.labels[rows], planted.data.probabilities[rows])
        precision, recall = _precision_recall(aleatoric, truth)
        ref_precision, ref_recall = _precision_recall(reference, truth)
        print(f"{noise} {rate:.0%} {dataset}: aleatoric precision {precision:.3f} recall {recall:.3f}"
              f" | cleanlab precision {ref_precision:.3f} recall {ref_recall:.3f}")
        assert precision >= ref_precision
        assert recall >= 0.9


def test_aleatoric_is_rare_on_clean_labels():
    planted = make_planted(label_noise=0.0, n_conflicts=0, seed=2)
    samples = analyze(planted.data).samples
    share = (samples["category"] == "aleatoric_hotspot").groupby(samples["dataset"]).mean()
    print(f"aleatoric share on clean labels: {share.round(4).to_dict()}")
    assert (share < 0.01).all()


def test_where_the_model_has_not_learned_the_errors_are_the_models():
    # An undecided model: the same posteriors, flattened (temperature 20). Confident learning
    # still flags the noisy labels (its thresholds are relative), but the model classifies the
    # training data around them without conviction, so the errors are not blamed on the data.
    planted = make_planted(label_noise=0.1, n_conflicts=0, seed=2)
    flat = planted.data.probabilities ** 0.05
    flat /= flat.sum(axis=1, keepdims=True)
    data = EvalData(planted.data.samples, flat, planted.data.features)
    samples = analyze(data).samples
    print(f"undecided model: label_issue {samples['label_issue'].mean():.3f}, "
          f"aleatoric {(samples['category'] == 'aleatoric_hotspot').mean():.4f}")
    assert samples["label_issue"].sum() > 200 and samples["reference_margin"].median() < 0.2
    assert (samples["category"] == "aleatoric_hotspot").mean() < 0.01
