"""Image previews: small JPEGs of the traced inputs, through the tracers into a result's previews table."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ml_debugger.core.previews import MAX_SIDE, encode_previews
from ml_debugger.evaluator import Evaluator
from ml_debugger.exceptions import TraceValidationError
from ml_debugger.store import LocalStore
from ml_debugger.training import ClassificationTracer, ObjectDetectionTracer


def decoded(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    return image


@pytest.mark.parametrize(("shape", "mode"), [((3, 300, 200), "RGB"), ((200, 300, 3), "RGB"), ((40, 60), "L")])
def test_previews_are_small_jpegs_of_any_layout(shape: tuple, mode: str) -> None:
    [jpeg] = encode_previews([np.random.default_rng(0).normal(size=shape).astype(np.float32)])
    image = decoded(jpeg)
    assert image.mode == mode and max(image.size) <= MAX_SIDE
    assert len(jpeg) < 16_000


def test_a_constant_image_and_a_bad_shape() -> None:
    assert decoded(encode_previews([np.zeros((3, 8, 8))])[0]).size == (8, 8)
    with pytest.raises(TraceValidationError, match="previews need image inputs"):
        encode_previews([np.zeros(10)])


def test_classification_previews_reach_the_result(store: LocalStore) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 3))
    tracer = ClassificationTracer(model, "prev", "v1", previews=True, store=store)
    images = torch.randn(12, 3, 16, 16)
    with torch.no_grad():
        tracer(images, torch.arange(12) % 3, input_ids=np.arange(12), dataset_type="val")
    tracer.wait_for_save()
    result = Evaluator("prev", "v1", store=store).request_evaluation()
    previews = result.tables["previews"]
    assert previews["input_id"].tolist() == sorted(str(i) for i in range(12))
    assert decoded(previews["preview"].iloc[0]).size == (16, 16)


class TorchvisionLike(nn.Module):
    """Any module whose eval output is torchvision's format."""

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        box = torch.tensor([[2.0, 2.0, 20.0, 20.0]])
        return [{"boxes": box, "scores": torch.tensor([0.9]), "labels": torch.tensor([1])} for _ in images]


def test_detection_previews_reach_the_result(store: LocalStore) -> None:
    tracer = ObjectDetectionTracer(TorchvisionLike().eval(), "prevdet", "v1", previews=True, store=store)
    targets = [{"boxes": [[2, 2, 20, 20]], "labels": [1]}, {"boxes": [], "labels": []}]
    tracer(torch.rand(2, 3, 32, 48), targets, input_ids=["a", "b"], dataset_type="val")
    tracer.wait_for_save()
    previews = Evaluator("prevdet", "v1", store=store).request_evaluation().tables["previews"]
    assert previews["input_id"].tolist() == ["a", "b"]
    assert decoded(previews["preview"].iloc[1]).size == (48, 32)
