"""Quickstart: trace a classifier's validation loop every epoch, then ask where and why it fails.

Trains a small MLP on scikit-learn's bundled digits (8x8 images, 10 classes) for a few epochs on
the CPU, with 15% of the training labels flipped so that there is something to find. After each
epoch the train and validation splits are traced; then the Evaluator turns the traces into
metrics, issue categories, error codes and hotspot clusters. Runs offline on the embedded store
(MLD_HOME, default ./mldebugger).

    python examples/quickstart.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ml_debugger.evaluator import Evaluator
from ml_debugger.training import ClassificationTracer

EPOCHS = 4
VERSION = "quickstart"


def digits_loaders(noise: float = 0.15, seed: int = 0) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train loader (shuffled, noisy labels), and ordered train / validation loaders with ids."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    ids = np.arange(len(y))
    x_tr, x_va, y_tr, y_va, id_tr, id_va = train_test_split(x, y, ids, test_size=0.3, random_state=seed)
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y_tr)) < noise
    y_tr = np.where(flip, rng.integers(0, 10, len(y_tr)), y_tr)

    def dataset(xs, ys, idx):
        return TensorDataset(xs, torch.tensor(ys), torch.tensor(idx))

    train = dataset(x_tr, y_tr, id_tr)
    return (
        DataLoader(train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed)),
        DataLoader(train, batch_size=256),
        DataLoader(dataset(x_va, y_va, id_va), batch_size=256),
    )


def main() -> None:
    torch.manual_seed(0)
    train_loader, train_eval_loader, val_loader = digits_loaders()
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    tracer = ClassificationTracer(model, model_name="digits_mlp", version_name=VERSION)

    for epoch in range(EPOCHS):
        model.train()
        for x, y, _ in train_loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

        model.eval()
        with torch.no_grad():
            for name, loader in (("train", train_eval_loader), ("val", val_loader)):
                for x, y, ids in loader:
                    tracer(x, y, input_ids=ids, dataset_type=name, n_epoch=epoch)
        tracer.wait_for_save(n_epoch=epoch)

    evaluator = Evaluator(model_name="digits_mlp", version_name=VERSION)
    result = evaluator.request_evaluation(n_epoch=None)  # every epoch: enables the training dynamics
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.max_colwidth", 60):
        result.get_summary()
        print("\n-- Issues found\n", result.get_issues()[["dataset", "code", "name", "count", "recommended_action"]])
        print("\n-- Hotspot clusters\n", result.get_hotspots().head())
        print("\n-- Metrics per epoch\n", result.metrics_summary(by_epoch=True))
    print(f"\nStored as result {result.name!r}; list them with Evaluator(...).list_results()")


if __name__ == "__main__":
    main()
