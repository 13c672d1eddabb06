"""The Keras 3 callback in real fits on the torch backend: data formats, features, schedules, failures."""

from __future__ import annotations

import math
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from ml_debugger.exceptions import ConfigurationError, WriterError
from ml_debugger.integrations.keras import MLDebuggerCallback, iter_batches
from ml_debugger.store import LocalStore

N_VAL = 45


def data(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).normal(size=(size, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5)


def model(softmax: bool = False) -> keras.Model:
    net = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(12, activation="relu", name="hidden"),
        keras.layers.Dense(3, activation="softmax" if softmax else None, name="head"),
    ])
    net.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax))
    return net


def fit(callback: MLDebuggerCallback, *, epochs: int = 1, net: keras.Model | None = None, extra=()) -> keras.Model:
    net = net or model()
    net.fit(*data(32, 1), epochs=epochs, batch_size=16, verbose=0, callbacks=[callback, *extra])
    return net


def rows(store: LocalStore) -> pd.DataFrame:
    return store.read_traces("m", "v1", None).to_pandas()


class Digits(keras.utils.PyDataset):
    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int = 10) -> None:
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        part = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[part], self.y[part]


def test_arrays_with_ids_every_epoch(store: LocalStore) -> None:
    x, y = data(N_VAL)
    ids = np.array([f"v{i}" for i in range(N_VAL)])
    fit(MLDebuggerCallback("m", "v1", validation_data=(x, y, ids), store=store, batch_size=16), epochs=2)
    traced = rows(store)
    assert traced.groupby("epoch").size().to_dict() == {0: N_VAL, 1: N_VAL}
    assert set(traced["input_id"]) == set(ids) and traced["global_step"].unique().tolist() == [2, 4]
    assert len(traced["features"][0]) == 12 and (traced["score_type"] == "logits").all()
    assert store.committed_epochs("m", "v1") == [0, 1]


def test_features_and_scores_match_the_model(store: LocalStore) -> None:
    x, y = data(N_VAL)
    net = fit(MLDebuggerCallback("m", "v1", validation_data=(x, y), store=store))
    traced = rows(store).sort_values("input_id", key=lambda s: s.astype(int))
    np.testing.assert_allclose(np.stack(traced["scores"]), net.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    hidden = keras.Model(net.inputs[0], net.get_layer("hidden").output).predict(x, verbose=0)
    np.testing.assert_allclose(np.stack(traced["features"]), hidden, rtol=1e-4, atol=1e-5)


def test_py_dataset_softmax_and_named_feature_layer(store: LocalStore) -> None:
    x, y = data(N_VAL)
    callback = MLDebuggerCallback("m", "v1", validation_data=Digits(x, y), store=store, feature_layer="head")
    fit(callback, net=model(softmax=True))
    traced = rows(store)
    assert sorted(traced["input_id"].astype(int)) == list(range(N_VAL))
    assert (traced["score_type"] == "probabilities").all() and len(traced["features"][0]) == 3


def test_every_n_epochs_and_training_split(store: LocalStore) -> None:
    callback = MLDebuggerCallback(
        "m", "v1", validation_data=data(N_VAL), store=store, every_n_epochs=2,
        train_data=data(32, 1), trace_train_every_n_epochs=1,
    )
    fit(callback, epochs=2)
    counts = rows(store).groupby(["dataset_type", "epoch"]).size().to_dict()
    assert counts == {("train", 0): 32, ("train", 1): 32, ("val", 1): N_VAL}


def test_fit_twice_with_one_callback(store: LocalStore) -> None:
    callback = MLDebuggerCallback("m", "v1", validation_data=data(N_VAL), store=store)
    net = fit(callback)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit(callback, net=net, epochs=2)
    assert rows(store).groupby("epoch").size().to_dict() == {0: 2 * N_VAL, 1: N_VAL}
    assert rows(store)["run_id"].nunique() == 2


def test_arguments_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="model_name"):
        MLDebuggerCallback(validation_data=data(4))
    with pytest.raises(ConfigurationError, match="validation_data is required"):
        MLDebuggerCallback("m", "v1")
    with pytest.raises(ConfigurationError, match="needs train_data"):
        MLDebuggerCallback("m", "v1", validation_data=data(4), trace_train_every_n_epochs=1)
    with pytest.raises(ConfigurationError, match="PyDataset"):
        list(iter_batches([1, 2], 4))


def test_tf_data(store: LocalStore) -> None:
    tf = pytest.importorskip("tensorflow", reason="tf.data needs TensorFlow")
    x, y = data(N_VAL)
    fit(MLDebuggerCallback("m", "v1", validation_data=tf.data.Dataset.from_tensor_slices((x, y)).batch(16), store=store))
    assert len(rows(store)) == N_VAL


class BreakStore(keras.callbacks.Callback):
    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        if epoch == 1:
            shutil.rmtree(self.root / "traces")
            (self.root / "traces").write_text("not a directory")


def test_store_failure_mid_training_warns_once(store: LocalStore) -> None:
    history = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        callback = MLDebuggerCallback("m", "v1", validation_data=data(N_VAL), store=store)
        fit(callback, epochs=3, extra=[BreakStore(store.root), keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: history.append(epoch))])
    ours = [w for w in caught if "ml-debugger (keras)" in str(w.message)]
    assert history == [0, 1, 2] and len(ours) == 1 and "WriterError" in str(ours[0].message)
    assert store.committed_epochs("m", "v1") == [0]


def test_strict_raises(store: LocalStore) -> None:
    callback = MLDebuggerCallback("m", "v1", validation_data=data(N_VAL), store=store, strict=True)
    with pytest.raises(WriterError):
        fit(callback, epochs=2, extra=[BreakStore(store.root)])
