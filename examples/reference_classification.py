"""The reference SDK page's classification "Complete Sample Code", with a real model and DataLoader.

Only the two "user implementation" lines are filled in (a small CNN trained for a few seconds on
scikit-learn's bundled 8x8 digits); everything from "Initialize Tracer" on is the reference code.
Without MLD_API_ENDPOINT / MLD_API_KEY it runs on the embedded store (MLD_HOME, default ./mldebugger);
set them to use a server instead.

    python examples/reference_classification.py
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ml_debugger.evaluator import Evaluator
from ml_debugger.training import ClassificationTracer


class Digits(Dataset):
    """scikit-learn's digits as (image, label, index) triples: 1x8x8 float images, 10 classes."""

    def __init__(self) -> None:
        digits = load_digits()
        self.images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
        self.labels = torch.tensor(digits.target, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.images[index], self.labels[index], index


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def trained_model(dataset: Dataset, epochs: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = small_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = DataLoader(dataset, batch_size=64, shuffle=True)
    for _ in range(epochs):
        for x, y, _ in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    return model


def main() -> None:
    dataset = Digits()
    # Prepare model and dataloader (user implementation)
    model = trained_model(dataset)  # Trained model
    dataloader = DataLoader(dataset, batch_size=64)  # DataLoader
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    model.to(device)
    model.eval()

    # Initialize Tracer
    tracer = ClassificationTracer(
        model,
        model_name="my_model",
        version_name="v1",
    )

    # Collect data
    for image, label, indices in dataloader:
        image = image.to(device)
        label = label.to(device)
        with torch.no_grad():
            _ = tracer(image, label, input_ids=indices.cpu().numpy(), dataset_type="train")

    # Upload
    tracer.wait_for_save()

    # Run evaluation
    evaluator = Evaluator(model_name="my_model", version_name="v1")
    result = evaluator.request_evaluation()

    # Review results
    result.get_summary()


if __name__ == "__main__":
    main()
