"""Quickstart: trace a classifier's validation loop every epoch, then ask where and why it fails.

Trains a small MLP on scikit-learn's bundled digits (8x8 images, 10 classes; 1,257 training and
540 validation images) on the CPU until its validation accuracy stops improving, with exactly
150 training labels flipped to another class so that there is something to find. After each
epoch the train and validation splits are traced; then the Evaluator turns the traces into
metrics, issue categories, error codes, hotspot clusters and recommended actions, and the script
checks how many of the flipped labels the label flags found. Runs offline on the embedded store
(MLD_HOME, default ./mldebugger), in well under two minutes on two cores.

    python examples/quickstart.py
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ml_debugger.evaluator import Evaluator
from ml_debugger.evaluator.result import Result
from ml_debugger.training import ClassificationTracer

N_FLIPPED = 150
"""Training labels changed to another class (of 1,257)."""
MAX_EPOCHS = 100
PATIENCE = 5
"""Stop when validation accuracy has not improved for this many epochs."""
VERSION = "quickstart"


def digits_loaders(
    seed: int = 0, n_flipped: int = N_FLIPPED
) -> tuple[DataLoader, DataLoader, DataLoader, np.ndarray]:
    """Train loader (shuffled, ``n_flipped`` labels flipped), ordered train / validation loaders
    with ids, and the ids of the flipped training inputs."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    ids = np.arange(len(y))
    x_tr, x_va, y_tr, y_va, id_tr, id_va = train_test_split(x, y, ids, test_size=0.3, random_state=seed)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(y_tr), n_flipped, replace=False)
    y_tr = y_tr.copy()
    y_tr[flipped] = (y_tr[flipped] + rng.integers(1, 10, n_flipped)) % 10  # always another class

    def dataset(xs, ys, idx):
        return TensorDataset(xs, torch.tensor(ys), torch.tensor(idx))

    train = dataset(x_tr, y_tr, id_tr)
    return (
        DataLoader(train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed)),
        DataLoader(train, batch_size=256),
        DataLoader(dataset(x_va, y_va, id_va), batch_size=256),
        id_tr[flipped],
    )


def train_and_trace(
    max_epochs: int = MAX_EPOCHS, patience: int = PATIENCE, *, seed: int = 0,
    n_flipped: int = N_FLIPPED, version: str = VERSION,
) -> np.ndarray:
    """Train until validation accuracy stops improving (or ``max_epochs``), tracing both splits
    after every epoch under ``version``; return the ids of the flipped training inputs."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # a tiny model: one thread is the fastest, and leaves a core free
    train_loader, train_eval_loader, val_loader, flipped_ids = digits_loaders(seed, n_flipped)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    tracer = ClassificationTracer(model, model_name="digits_mlp", version_name=version)
    best, since_best = 0.0, 0
    for epoch in range(max_epochs):
        model.train()
        for x, y, _ in train_loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y, ids in train_eval_loader:
                tracer(x, y, input_ids=ids, dataset_type="train", n_epoch=epoch)
            for x, y, ids in val_loader:
                correct += int((tracer(x, y, input_ids=ids, dataset_type="val", n_epoch=epoch).argmax(1) == y).sum())
        tracer.wait_for_save(n_epoch=epoch)
        accuracy = correct / len(val_loader.dataset)
        print(f"epoch {epoch}: val accuracy {accuracy:.3f}")
        best, since_best = (accuracy, 0) if accuracy > best else (best, since_best + 1)
        if since_best >= patience:
            print(f"stopped: no improvement for {patience} epochs (best {best:.3f})")
            break
    return flipped_ids


def flipped_labels_found(result: Result, flipped_ids: np.ndarray) -> dict[str, float]:
    """Precision and recall of the label flags (CLS004 suspected_label_error) on the training
    split's latest epoch against the flipped labels."""
    samples = result.get_samples()
    train = samples[(samples["dataset"] == "train") & (samples["epoch"] == result.summary_epochs["train"])]
    flagged = set(train.loc[train["error_codes"].map(lambda codes: "CLS004" in codes), "input_id"])
    truth = {str(i) for i in flipped_ids}
    hits = len(flagged & truth)
    return {
        "flagged": len(flagged),
        "hits": hits,
        "precision": hits / max(len(flagged), 1),
        "recall": hits / len(truth),
    }


def main(max_epochs: int = MAX_EPOCHS, patience: int = PATIENCE) -> dict[str, float]:
    flipped_ids = train_and_trace(max_epochs, patience)
    evaluator = Evaluator(model_name="digits_mlp", version_name=VERSION)
    result = evaluator.request_evaluation(n_epoch=None)  # every epoch: enables the training dynamics
    print()
    result.get_summary()
    found = flipped_labels_found(result, flipped_ids)
    val = result.issue_category_summary().set_index("dataset").loc["val", "aleatoric_hotspot_ratio"]
    print(
        f"\n== What it found: {N_FLIPPED} of the 1,257 training labels were flipped to another class.\n"
        f"   The label flags (CLS004 suspected_label_error, train, epoch {result.summary_epochs['train']}) "
        f"flag {found['flagged']} inputs, {found['hits']} of them flipped:\n"
        f"   precision {found['precision']:.3f}, recall {found['recall']:.3f} "
        f"({found['hits']} of the {N_FLIPPED} flipped labels found).\n"
        f"   On the clean validation split, {val:.1%} of the units are blamed on the data (aleatoric_hotspot)."
    )
    print(f"\nStored as result {result.name!r}; list them with Evaluator(...).list_results()")
    return found


if __name__ == "__main__":
    main()
