"""torchvision detectors traced as the user runs them: the model's own output, boxes in input pixels,
thresholds read from the model, box-head / FPN features of detections and ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import detection as D

from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.store import LocalStore
from ml_debugger.training import ObjectDetectionTracer
from tests.training.detection.conftest import GT_LIST, boxes_of, check_rows, read_rows

SIZES = [(96, 64), (64, 80)]  # (width, height) of the two images
SMALL = {"weights": None, "weights_backbone": None, "num_classes": 3, "min_size": 64, "max_size": 96}


def images(seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(3, h, w, generator=generator) for w, h in SIZES]


FAMILIES = {
    # name: (builder, tracer class, per-object feature size, image feature size)
    "fasterrcnn_resnet50_fpn": (lambda: D.fasterrcnn_resnet50_fpn(**SMALL), "FasterRCNNTracer", 1024, 5 * 256),
    "fasterrcnn_mobilenet_v3": (lambda: D.fasterrcnn_mobilenet_v3_large_fpn(**SMALL), "FasterRCNNTracer", 1024,
                                3 * 256),
    "retinanet": (lambda: D.retinanet_resnet50_fpn(**SMALL, score_thresh=0.001), "RetinaNetTracer", 256, 5 * 256),
    "fcos": (lambda: D.fcos_resnet50_fpn(**SMALL, score_thresh=0.001), "FCOSTracer", 256, 5 * 256),
    "ssdlite": (lambda: D.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3),
                "SSDTracer", None, 672 + 480 + 512 + 256 + 256 + 128),
    "ssd300_vgg16": (lambda: D.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=3),
                     "SSDTracer", None, 512 + 1024 + 512 + 256 + 256 + 256),
}


def model_thresholds(model: nn.Module) -> tuple:
    owner = getattr(model, "roi_heads", model)
    return owner.score_thresh, owner.nms_thresh, owner.detections_per_img


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_records_the_models_own_detections(store: LocalStore, name: str) -> None:
    build, tracer_class, object_dim, image_dim = FAMILIES[name]
    torch.manual_seed(0)
    model = build().eval()
    tracer = ObjectDetectionTracer(model, "m", "v1", store=store)
    assert type(tracer).__name__ == tracer_class
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_image) == model_thresholds(model)
    assert tracer.num_classes == 3

    out = tracer(images(), GT_LIST, input_ids=torch.tensor([10, 11]), dataset_type="val")
    with torch.no_grad():
        expected = model(images())
    assert isinstance(out, list) and [set(o) for o in out] == [{"boxes", "scores", "labels"}] * 2
    assert out[0]["boxes"].requires_grad  # not wrapped in no_grad: the output keeps its graph
    for got, want in zip(out, expected):
        torch.testing.assert_close(got["boxes"].detach(), want["boxes"])
    assert sum(len(o["boxes"]) for o in out) > 0

    tracer.wait_for_save()
    rows = read_rows(store)
    check_rows(rows, SIZES, model_thresholds(model))
    assert rows["input_id"].tolist() == ["10", "11"]
    for cell, o in zip(rows["pred_boxes"], out):
        np.testing.assert_allclose(boxes_of(cell), o["boxes"].detach().numpy(), rtol=1e-5, atol=1e-4)
    for cell, o in zip(rows["pred_scores"], out):
        np.testing.assert_allclose(cell, o["scores"].detach().numpy(), rtol=1e-5)
    assert [list(c) for c in rows["pred_labels"]] == [o["labels"].tolist() for o in out]
    assert len(rows["image_features"][0]) == image_dim
    if object_dim is None:
        assert "pred_features" not in rows and "gt_features" not in rows
    else:
        assert {len(f) for cell in rows["pred_features"] for f in cell} == {object_dim}
        assert rows["pred_features"][0][0].dtype == np.float16  # stored as float16
        assert [len(c) for c in rows["gt_features"]] == [2, 0]
        assert {len(f) for f in rows["gt_features"][0]} == {object_dim}


def resized_rcnn() -> nn.Module:
    """A Faster R-CNN whose transform doubles the 64 x 96 test image."""
    torch.manual_seed(0)
    return D.fasterrcnn_mobilenet_v3_large_fpn(**{**SMALL, "min_size": 128, "max_size": 192}).eval()


GT_ONE = [{"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0]]), "labels": torch.tensor([1])}]


def box_head_by_hand(model: nn.Module, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The box head run by hand on the resized image's backbone features, boxes scaled as the image."""
    with torch.no_grad():
        resized, _ = model.transform([image])
        assert resized.image_sizes == [(128, 192)]
        features = model.backbone(resized.tensors)
        pooled = model.roi_heads.box_roi_pool(features, [boxes * 2], resized.image_sizes)
        return model.roi_heads.box_head(pooled)


def test_detection_features_are_those_of_their_proposals(store: LocalStore) -> None:
    """A detection's feature is the box head's output for the proposal it was classified from (the
    forward pass computed it); a ground-truth box's is the box head run on it in the resized image."""
    model = resized_rcnn()
    image = torch.rand(3, 64, 96, generator=torch.Generator().manual_seed(5))
    seen = {}

    def keep(module, args, output) -> None:
        seen["box_head"] = output.detach()

    model.roi_heads.box_head.register_forward_hook(keep)
    tracer = ObjectDetectionTracer(model, "m", "v1", store=store)
    out = tracer([image], GT_ONE, dataset_type="val")
    tracer.wait_for_save()
    rows = read_rows(store)
    recorded = np.stack(rows["pred_features"][0]).astype(np.float32)
    assert len(recorded) == len(out[0]["boxes"]) > 0
    distances = np.abs(recorded[:, None, :] - seen["box_head"].numpy()[None]).max(axis=2).min(axis=1)
    assert (distances < 1e-2).all()  # every detection found its proposal (float16 rounding)
    np.testing.assert_allclose(np.stack(rows["gt_features"][0]), box_head_by_hand(model, image, GT_ONE[0]["boxes"]),
                               rtol=2e-3, atol=2e-3)


def test_unmatched_detections_get_the_box_head_run_on_their_box(store: LocalStore) -> None:
    """If a detection matches no proposal (here: the post-processing rescales scores), its feature
    is the box head run on its own box in the resized image."""
    model = resized_rcnn()
    image = torch.rand(3, 64, 96, generator=torch.Generator().manual_seed(5))
    original = model.roi_heads.postprocess_detections

    def rescaled(*args):
        boxes, scores, labels = original(*args)
        return boxes, [s * 0.999 for s in scores], labels

    model.roi_heads.postprocess_detections = rescaled
    tracer = ObjectDetectionTracer(model, "m", "v1", store=store)
    out = tracer([image], GT_ONE, dataset_type="val")
    tracer.wait_for_save()
    by_hand = box_head_by_hand(model, image, out[0]["boxes"].detach())
    np.testing.assert_allclose(np.stack(read_rows(store)["pred_features"][0]), by_hand, rtol=2e-3, atol=2e-3)


def test_stricter_thresholds_filter_the_record_not_the_model(store: LocalStore) -> None:
    torch.manual_seed(0)
    model = D.fasterrcnn_mobilenet_v3_large_fpn(**SMALL).eval()
    tracer = ObjectDetectionTracer(model, "m", "v1", score_thresh=0.2, max_detections_per_image=5, store=store)
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_image) == (0.2, 0.5, 5)
    out = tracer(images(), GT_LIST, dataset_type="val")
    assert model.roi_heads.score_thresh == 0.05 and model.roi_heads.detections_per_img == 100
    tracer.wait_for_save()
    rows = read_rows(store)
    check_rows(rows, SIZES, (0.2, 0.5, 5))
    for scores, o in zip(rows["pred_scores"], out):
        kept = o["scores"].detach().numpy()
        expected = np.sort(kept[kept > 0.2])[::-1][:5]
        np.testing.assert_allclose(scores, expected, rtol=1e-6)
        assert len(rows["pred_features"][0]) == len(rows["pred_scores"][0])


def test_looser_thresholds_warn_and_keep_the_models_values(store: LocalStore) -> None:
    model = D.fasterrcnn_mobilenet_v3_large_fpn(**SMALL).eval()
    with pytest.warns(UserWarning, match=r"score_thresh=0.01 is looser than the model's own \(0.05\).*roi_heads"):
        tracer = ObjectDetectionTracer(model, "m", "v1", score_thresh=0.01, store=store)
    assert tracer.score_thresh == 0.05 and model.roi_heads.score_thresh == 0.05


def test_training_mode_is_refused(store: LocalStore) -> None:
    model = D.fasterrcnn_mobilenet_v3_large_fpn(**SMALL).train()
    tracer = ObjectDetectionTracer(model, "m", "v1", store=store)
    with pytest.raises(ConfigurationError, match=r"training mode.*call model.eval\(\)"):
        tracer(images(), GT_LIST)


def test_ground_truth_labels_beyond_the_models_classes(store: LocalStore) -> None:
    tracer = ObjectDetectionTracer(D.fasterrcnn_mobilenet_v3_large_fpn(**SMALL).eval(), "m", "v1", store=store)
    bad = [{"boxes": [[0, 0, 5, 5]], "labels": [3]}, GT_LIST[1]]
    with pytest.raises(TraceValidationError, match=r"targets\[0\]\['labels'\] has class ids \[3\] outside \[0, 3\)"):
        tracer(images(), bad)


def test_any_module_with_torchvision_output(store: LocalStore) -> None:
    class Wrapped(nn.Module):
        """A detector behind a wrapper: unknown class, torchvision's output format."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = D.fasterrcnn_mobilenet_v3_large_fpn(**SMALL)
            self.score_thresh = 0.05

        def forward(self, x):
            return self.inner(x)

    model = Wrapped().eval()
    tracer = ObjectDetectionTracer(model, "m", "v1", store=store)
    assert type(tracer).__name__ == "TorchvisionStyleTracer"
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_image) == (0.05, 0.5, 300)
    out = tracer(images(), GT_LIST, dataset_type="val")
    tracer.wait_for_save()
    rows = read_rows(store)
    check_rows(rows, SIZES, (0.05, 0.5, 300))
    assert [len(c) for c in rows["pred_boxes"]] == [min(len(o["boxes"]), 300) for o in out]


def test_a_module_with_another_output_is_explained(store: LocalStore) -> None:
    tracer = ObjectDetectionTracer(nn.Conv2d(3, 4, 3), "m", "v1", store=store)
    explained = r"output is a Tensor, not torchvision's format.*Ultralytics.*output_mapping"
    with pytest.raises(ConfigurationError, match=explained):
        tracer(torch.rand(2, 3, 32, 32), GT_LIST)
