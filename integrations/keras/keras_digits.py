"""Train a small Keras 3 classifier on scikit-learn's digits, traced by ml-debugger.

Runs on any Keras backend; without TensorFlow use the torch one:
``KERAS_BACKEND=torch python integrations/keras/keras_digits.py``. Then evaluate:

    from ml_debugger.evaluator import Evaluator
    Evaluator("digits-mlp", "keras-v1").request_evaluation(n_epoch=None).get_summary()

The only ml-debugger line is the callback passed to ``fit``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from ml_debugger.integrations.keras import MLDebuggerCallback


def build_model() -> keras.Model:
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),  # logits; its input is recorded as the features
    ])


def main(epochs: int = 3, model_name: str = "digits-mlp", version_name: str = "keras-v1") -> None:
    keras.utils.set_random_seed(0)
    digits = load_digits()
    x_train, x_val, y_train, y_val = train_test_split(
        (digits.data / 16.0).astype("float32"), digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(
        x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, batch_size=64, verbose=0,
        callbacks=[MLDebuggerCallback(model_name, version_name, validation_data=(x_val, y_val))],  # <- ml-debugger
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    main(parser.parse_args().epochs)
