"""The reference page's object-detection sample, as written there (no torch.no_grad, no n_epoch),
with a tiny torchvision Faster R-CNN and a DataLoader of (images, targets, image_ids)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

from ml_debugger.store import LocalStore
from tests.training.detection.conftest import read_rows


class Shapes(Dataset):
    """Six 64x64 images; even ones hold one bright square (label 1), odd ones nothing."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int):
        image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(i)) * 0.2
        if i % 2:
            return image, {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}, i
        x = 8 + 4 * i
        image[:, 10:30, x:x + 20] = 1.0
        return image, {"boxes": torch.tensor([[x, 10.0, x + 20.0, 30.0]]), "labels": torch.tensor([1])}, i


def tiny_faster_rcnn():
    return fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None, num_classes=2, min_size=64, max_size=64
    )


def collate(batch):
    images, targets, ids = zip(*batch)
    return torch.stack(images), list(targets), torch.tensor(ids)


def run_reference_sample(model, dataloader):
    # ---- the reference page's sample from here (authentication and evaluation left out) ----
    from ml_debugger.training import ObjectDetectionTracer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    model.to(device)
    model.eval()

    # Initialize Tracer
    tracer = ObjectDetectionTracer(
        model,
        model_name="my_od_model",
        version_name="v1",
    )

    # Collect data
    for images, targets, image_ids in dataloader:
        images = images.to(device)
        _ = tracer(
            images,
            targets,
            input_ids=image_ids,
            dataset_type="train",
        )

    # Upload
    tracer.wait_for_save()
    return tracer


def test_reference_detection_sample_runs_unchanged(store: LocalStore) -> None:
    torch.manual_seed(0)
    model = tiny_faster_rcnn()
    tracer = run_reference_sample(model, DataLoader(Shapes(), batch_size=2, collate_fn=collate))
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_image) == (0.05, 0.5, 100)
    rows = read_rows(store, "my_od_model")
    assert sorted(rows["input_id"].astype(int)) == list(range(6))
    assert set(rows["epoch"]) == {0} and set(rows["dataset_type"]) == {"train"}
    assert [len(b) for b in rows.sort_values("input_id")["gt_boxes"]] == [1, 0, 1, 0, 1, 0]


@pytest.mark.skipif(
    importlib.util.find_spec("ml_debugger.tasks.detection2d.evaluation") is None,
    reason="the 2-D detection evaluation is not in this tree yet",
)
def test_reference_detection_sample_evaluates(store: LocalStore) -> None:
    from ml_debugger.evaluator import Evaluator

    torch.manual_seed(0)
    model = tiny_faster_rcnn()
    run_reference_sample(model, DataLoader(Shapes(), batch_size=2, collate_fn=collate))
    evaluator = Evaluator(model_name="my_od_model", version_name="v1")
    result = evaluator.request_evaluation()
    result.get_summary()
    assert "map" in result.metrics_summary().columns
