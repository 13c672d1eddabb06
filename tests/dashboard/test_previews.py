"""Previews recorded by a real tracer show in the dashboard, with detection units drawn on them."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

pytest.importorskip("fastapi", reason="the dashboard needs the server extra: pip install 'ml-debugger[server]'")
from fastapi.testclient import TestClient  # noqa: E402

from ml_debugger.evaluator import Evaluator  # noqa: E402
from ml_debugger.server import ServerConfig, create_app  # noqa: E402
from ml_debugger.store import LocalStore  # noqa: E402
from ml_debugger.training import ObjectDetectionTracer  # noqa: E402

FOUND, MISSED = [4.0, 4.0, 40.0, 40.0], [60.0, 20.0, 120.0, 80.0]


class OneBox(nn.Module):
    """Detects the first object of every image and nothing else (torchvision's output format)."""

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return [{"boxes": torch.tensor([FOUND]), "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}
                for _ in images]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    store = LocalStore(tmp_path / "home")
    tracer = ObjectDetectionTracer(OneBox().eval(), "boxes", "v1", previews=True, store=store)
    targets = [{"boxes": [FOUND, MISSED], "labels": [1, 1]}] * 2
    tracer(torch.full((2, 3, 100, 128), 0.5), targets, input_ids=["a", "b"], dataset_type="val")
    tracer.wait_for_save()
    Evaluator("boxes", "v1", store=store).request_evaluation("r", operating_score=0.5)
    app = create_app(ServerConfig(home=tmp_path / "home", local_only=True))
    with TestClient(app, client=("127.0.0.1", 50000)) as test_client:
        yield test_client


def test_detection_previews_show_found_and_missed_objects(client: TestClient) -> None:
    page = client.get("/dashboard/models/boxes/versions/v1/results/r", params={"dataset": "val"})
    assert page.status_code == 200 and 'class="preview"' in page.text
    answer = client.get("/dashboard/api/preview/boxes/v1/r", params={"dataset": "val", "input_id": "a", "epoch": 0})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    pixels = np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (100, 128)  # the image fits in 128 px as it is
    green, red = pixels[5, 20], pixels[21, 90]  # on the found box's top edge and the missed box's
    assert green[1] > green[0] + 40 and green[1] > green[2] + 40
    assert red[0] > red[1] + 60 and red[0] > red[2] + 60
    assert pixels[50, 50].max() < 30  # inside: the (constant, so black) image itself
