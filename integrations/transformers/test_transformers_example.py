"""Runs transformers_tiny_bert.py end to end on CPU, offline, and evaluates what it traced."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")

from ml_debugger.evaluator import Evaluator

N_VAL = 150


@pytest.mark.slow
def test_tiny_bert_trains_traces_and_evaluates(tmp_path: Path, load_script) -> None:
    load_script(Path(__file__).with_name("transformers_tiny_bert.py")).main(str(tmp_path), epochs=3)

    result = Evaluator("tiny-bert-sentiment", "hf-v1").request_evaluation(n_epoch=None)
    samples = result.get_samples()
    assert samples.groupby(["dataset", "epoch"]).size().to_dict() == {("val", 0): N_VAL, ("val", 1): N_VAL, ("val", 2): N_VAL}
    assert set(samples["input_id"]) == {f"r2-{i:05d}" for i in range(N_VAL)}
    metrics = result.metrics_summary(by_epoch=True).set_index("epoch")
    assert metrics.loc[2, "accuracy"] > 0.75, "the model learned the sentiment words"
