"""Runs lightning_digits.py end to end on CPU and evaluates what it traced."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lightning.pytorch")

from ml_debugger.evaluator import Evaluator

N_VAL = 450  # a quarter of scikit-learn's 1,797 digits


@pytest.mark.slow
def test_lightning_digits_trains_traces_and_evaluates(load_script) -> None:
    load_script(Path(__file__).with_name("lightning_digits.py")).main(epochs=2)

    result = Evaluator("digits-mlp", "lightning-v1").request_evaluation(n_epoch=None)
    samples = result.get_samples()
    assert samples.groupby(["dataset", "epoch"]).size().to_dict() == {("val", 0): N_VAL, ("val", 1): N_VAL}
    assert sorted(samples["input_id"].astype(int).unique()) == list(range(N_VAL))
    metrics = result.metrics_summary(by_epoch=True).set_index("epoch")
    assert metrics.loc[1, "accuracy"] > 0.8, "the model trained for real"
