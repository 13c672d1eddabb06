"""A real store for the dashboard tests: a digits classifier traced over epochs, a regression, and
a 2-D and a 3-D detection result.

scikit-learn's digits (real 8x8 images) and a logistic regression trained a little more every
epoch; traced through the real engine (``TraceSession``) and evaluated by the real evaluator.
``v1`` is evaluated over all its epochs. ``v2`` is the same model trained on labels where most
3s were relabelled 8: the known regression the Compare page must show (val accuracy falls, and
3s that ``v1`` got right are newly broken, predicted as 8). The detection results (``boxes`` and
``lidar``) are synthetic detections recorded and evaluated the same way (the tasks' test helpers).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from ml_debugger.core import TraceSession
from ml_debugger.evaluator import Evaluator
from ml_debugger.store import LocalStore
from ml_debugger.tasks.classification import make_classification_batch
from tests.tasks.detection2d.recording import record as record_2d
from tests.tasks.detection2d.synthetic import random_detection_set
from tests.tasks.detection3d.recording import record as record_3d
from tests.tasks.detection3d.synthetic import CLASS_NAMES, random_frame_set

MODEL = "digits"
BOXES = "boxes"
LIDAR = "lidar"
EPOCHS = 3
HOSTILE_ID = "<img src=x onerror=alert(1)>"
"""One validation input has this id: pages must show it as text."""


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    id_train: np.ndarray
    id_val: np.ndarray


@dataclass(frozen=True)
class StoreData:
    home: Path
    v1_all: str
    """``v1``'s result over every epoch."""
    v2_latest: str
    """``v2``'s result at its latest epoch: the regression."""


def digits(train_size: int = 700, seed: int = 0) -> Dataset:
    x, y = load_digits(return_X_y=True)
    ids = np.array([str(i) for i in range(len(y))], dtype=object)
    x_tr, x_va, y_tr, y_va, id_tr, id_va = train_test_split(x / 16.0, y, ids, test_size=0.3, random_state=seed)
    id_va[0] = HOSTILE_ID
    return Dataset(x_tr[:train_size], y_tr[:train_size], x_va, y_va, id_tr[:train_size], id_va)


def _trace(store: LocalStore, version: str, data: Dataset, labels: np.ndarray, epochs: int) -> None:
    session = TraceSession(MODEL, version, "classification", store=store)
    for epoch in range(epochs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(max_iter=2 + 6 * epoch).fit(data.x_train, labels)
        for name, x, y, ids in (("train", data.x_train, data.y_train, data.id_train),
                                ("val", data.x_val, data.y_val, data.id_val)):
            batch = make_classification_batch(
                model.decision_function(x), y, input_hashes=ids, input_ids=ids, features=x.astype(np.float32)
            )
            session.record(batch, dataset_type=name, n_epoch=epoch)
        session.wait_for_save(n_epoch=epoch)


def build_store(home: Path) -> StoreData:
    """Trace and evaluate every model into ``home`` (a few seconds)."""
    store = LocalStore(home)
    data = digits()
    _trace(store, "v1", data, data.y_train, EPOCHS)
    relabelled = data.y_train.copy()
    threes = np.flatnonzero(relabelled == 3)
    relabelled[threes[: int(0.8 * len(threes))]] = 8
    _trace(store, "v2", data, relabelled, EPOCHS)
    v1 = Evaluator(MODEL, "v1", store=store).request_evaluation("v1-all", n_epoch=None, progress=False)
    v2 = Evaluator(MODEL, "v2", store=store).request_evaluation("v2-latest", progress=False)
    record_2d(store, random_detection_set(0, n_images=30), model=BOXES, version="v1")
    Evaluator(BOXES, "v1", store=store).request_evaluation("r", progress=False)
    record_3d(store, random_frame_set(0), CLASS_NAMES, model=LIDAR, version="v1")
    Evaluator(LIDAR, "v1", store=store).request_evaluation("r", progress=False)
    return StoreData(home=home, v1_all=v1.name, v2_latest=v2.name)
