"""The reference page's classification sample, filled in, gives scikit-learn's numbers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from ml_debugger.evaluator import Evaluator

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reference_classification.py"


def load_example():
    spec = importlib.util.spec_from_file_location("reference_classification", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_reference_sample_metrics_equal_sklearn(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example()
    example.main()
    printed = capsys.readouterr().out
    assert "Metrics" in printed and "Issue categories" in printed

    results = Evaluator("my_model", "v1").list_results()
    assert len(results) == 1
    result = Evaluator("my_model", "v1").get_result(results["result_name"][0])
    summary = result.metrics_summary()
    assert list(summary.columns) == [
        "dataset", "counts", "accuracy", "auroc", "auprc", "net_entropy_loss", "net_entropy",
        "error_proba_auroc", "error_proba_auprc",
    ]
    row = summary.iloc[0]

    # The same model, trained the same way, evaluated independently with scikit-learn.
    dataset = example.Digits()
    model = example.trained_model(dataset).eval()
    with torch.no_grad():
        proba = torch.softmax(model(dataset.images), dim=1).double().numpy()
    y = dataset.labels.numpy()
    assert row["dataset"] == "train"
    assert row["counts"] == len(y) == 1797
    assert row["accuracy"] == pytest.approx(accuracy_score(y, proba.argmax(1)), abs=1e-9)
    assert row["auroc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"), rel=1e-5)
    onehot = np.eye(10)[y]
    assert row["auprc"] == pytest.approx(average_precision_score(onehot, proba, average="macro"), rel=1e-5)
    assert row["net_entropy_loss"] == pytest.approx(-np.log(proba[np.arange(len(y)), y]).sum(), rel=1e-4)
    assert row["net_entropy"] == pytest.approx(-(proba * np.log(proba)).sum(), rel=1e-4)

    samples = result.get_samples().set_index("input_id").loc[[str(i) for i in range(len(y))]]
    errors = (samples["prediction"] != samples["label"]).to_numpy()
    assert errors.sum() == (proba.argmax(1) != y).sum()
    assert row["error_proba_auroc"] == pytest.approx(roc_auc_score(errors, samples["error_proba"]), rel=1e-9)
    assert row["error_proba_auprc"] == pytest.approx(average_precision_score(errors, samples["error_proba"]), rel=1e-9)
