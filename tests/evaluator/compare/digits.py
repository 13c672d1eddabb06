"""Three real versions of a small digits classifier whose per-sample outcomes the tests know.

v1 is trained briefly; v2 longer, from the same start (many samples fixed); v3 as long as v2 but
with class 3 held out of training (class 3 newly broken). Each version's validation split is
traced and evaluated; ``outcomes`` holds each version's per-sample correctness computed directly
from the model, by input_id, at every traced epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from ml_debugger.evaluator import Evaluator
from ml_debugger.store import TraceStore
from ml_debugger.training import ClassificationTracer

MODEL = "digits"
HELD_OUT = 3
# version: (training steps traced as epoch 0, 1, ...; class held out of training)
RECIPES = {"v1": ((40,), None), "v2": ((40, 400), None), "v3": ((400,), HELD_OUT)}


@dataclass
class Digits:
    """The traced versions: result names and, per version and epoch, correctness by input_id."""

    results: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, dict[int, dict[str, bool]]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)


def _data():
    x, y = load_digits(return_X_y=True)
    ids = np.arange(len(y))
    return train_test_split(torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y), ids, test_size=0.3,
                            random_state=0)


def build(store: TraceStore) -> Digits:
    """Train, trace and evaluate v1, v2 and v3 into ``store``."""
    x_tr, x_va, y_tr, y_va, _, id_va = _data()
    digits = Digits(labels={str(i): int(label) for i, label in zip(id_va, y_va, strict=True)})
    for version, (steps, held_out) in RECIPES.items():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        keep = (y_tr != held_out) if held_out is not None else torch.ones_like(y_tr, dtype=torch.bool)
        xs, ys = x_tr[keep], y_tr[keep]
        tracer = ClassificationTracer(model, model_name=MODEL, version_name=version, store=store)
        generator = torch.Generator().manual_seed(0)
        done = 0
        digits.outcomes[version] = {}
        for epoch, until in enumerate(steps):
            model.train()
            for _ in range(until - done):
                batch = torch.randint(0, len(ys), (64,), generator=generator)
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(xs[batch]), ys[batch]).backward()
                optimizer.step()
            done = until
            model.eval()
            with torch.no_grad():
                logits = tracer(x_va, y_va, input_ids=id_va, dataset_type="val", n_epoch=epoch)
            correct = (logits.argmax(1) == y_va).numpy()
            digits.outcomes[version][epoch] = {str(i): bool(c) for i, c in zip(id_va, correct, strict=True)}
            tracer.wait_for_save(n_epoch=epoch)
        digits.results[version] = Evaluator(MODEL, version, store=store).request_evaluation(
            result_name=f"{version}-eval", n_epoch=None, progress=False).name
    return digits


def changed(before: dict[str, bool], after: dict[str, bool]) -> dict[str, set[str]]:
    """The ids fixed, newly broken and still wrong between two correctness maps."""
    return {
        "fixed": {i for i in before if not before[i] and after[i]},
        "newly_broken": {i for i in before if before[i] and not after[i]},
        "still_wrong": {i for i in before if not before[i] and not after[i]},
    }
