"""Runs keras_digits.py end to end on CPU (Keras 3, torch and TensorFlow backends) and evaluates what it traced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
pytest.importorskip("keras")

from ml_debugger.evaluator import Evaluator

N_VAL = 450  # a quarter of scikit-learn's 1,797 digits


@pytest.mark.slow
def test_keras_digits_trains_traces_and_evaluates(load_script) -> None:
    load_script(Path(__file__).with_name("keras_digits.py")).main(epochs=2)

    result = Evaluator("digits-mlp", "keras-v1").request_evaluation(n_epoch=None)
    samples = result.get_samples()
    assert samples.groupby(["dataset", "epoch"]).size().to_dict() == {("val", 0): N_VAL, ("val", 1): N_VAL}
    assert sorted(samples["input_id"].astype(int).unique()) == list(range(N_VAL))
    metrics = result.metrics_summary(by_epoch=True).set_index("epoch")
    assert metrics.loc[1, "accuracy"] > 0.8, "the model trained for real"


@pytest.mark.slow
def test_keras_digits_on_the_tensorflow_backend(mld_home: Path) -> None:
    """The same script on Keras' TensorFlow backend (a fresh process: the backend is fixed at import)."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed (make test installs tensorflow-cpu)")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "MLD_HOME": str(mld_home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    script = Path(__file__).with_name("keras_digits.py")
    subprocess.run([sys.executable, str(script), "--epochs", "2"], env=env, check=True, timeout=300)

    result = Evaluator("digits-mlp", "keras-v1").request_evaluation(n_epoch=None)
    samples = result.get_samples()
    assert samples.groupby(["dataset", "epoch"]).size().to_dict() == {("val", 0): N_VAL, ("val", 1): N_VAL}
    assert result.metrics_summary(by_epoch=True).set_index("epoch").loc[1, "accuracy"] > 0.8
