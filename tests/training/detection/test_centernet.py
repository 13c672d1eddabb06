"""CenterNet-style heatmap heads: peaks decoded as CenterNet's ctdet_decode does, boxes in input
pixels, features of the map the heads read."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.store import LocalStore
from ml_debugger.training import ObjectDetectionTracer
from tests.training.detection.conftest import GT_LIST, boxes_of, check_rows, read_rows


class TinyCenterNet(nn.Module):
    """CenterNet's layout: a stride-4 backbone, one head module per output named as in ``heads``,
    and a list of output dicts (one per stack)."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.heads = {"hm": classes, "wh": 2, "reg": 2}
        self.base = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())
        for name, channels in self.heads.items():
            setattr(self, name, nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, channels, 1)))
        nn.init.constant_(self.hm[-1].bias, -1.0)

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        features = self.base(x)
        return [{name: getattr(self, name)(features) for name in self.heads}]


class FixedHeads(nn.Module):
    """Returns fixed maps for a 64x64 input (stride 4): one peak of class 1 at row 3, column 5."""

    heads: ClassVar[dict[str, int]] = {"hm": 3, "wh": 2, "reg": 2}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        hm = torch.full((len(x), 3, 16, 16), -10.0)
        hm[:, 1, 3, 5] = 2.0
        hm[:, 1, 3, 6] = 1.0  # beside the peak: removed by the 3x3 max-pool
        wh = torch.zeros(len(x), 2, 16, 16)
        wh[:, :, 3, 5] = torch.tensor([4.0, 6.0])
        reg = torch.zeros(len(x), 2, 16, 16)
        reg[:, :, 3, 5] = torch.tensor([0.25, 0.5])
        return {"hm": hm, "wh": wh, "reg": reg}


def test_peaks_are_decoded_as_centernet_does(store: LocalStore) -> None:
    tracer = ObjectDetectionTracer(FixedHeads(), "m", "v1", store=store)
    assert type(tracer).__name__ == "CenterNetTracer"
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_image) == (0.05, None, 100)
    tracer(torch.zeros(1, 3, 64, 64), GT_LIST[:1], dataset_type="val")
    tracer.wait_for_save()
    rows = read_rows(store)
    # centre ((5 + 0.25) * 4, (3 + 0.5) * 4) = (21, 14), size (4 * 4, 6 * 4) = (16, 24)
    np.testing.assert_allclose(boxes_of(rows["pred_boxes"][0]), [[13.0, 2.0, 29.0, 26.0]])
    np.testing.assert_allclose(rows["pred_scores"][0], [1 / (1 + math.exp(-2.0))], rtol=1e-6)
    assert list(rows["pred_labels"][0]) == [1]


def test_a_centernet_network(store: LocalStore) -> None:
    torch.manual_seed(0)
    model = TinyCenterNet().eval()
    tracer = ObjectDetectionTracer(model, "m", "v1", max_detections_per_image=20, store=store)
    assert tracer.num_classes == 3 and tracer.max_detections_per_image == 20
    images = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    out = tracer(images, GT_LIST, input_ids=["p", "q"], dataset_type="val")
    with torch.no_grad():
        torch.testing.assert_close(out[0]["hm"].detach(), model(images)[0]["hm"])
    tracer.wait_for_save()
    rows = read_rows(store)
    check_rows(rows, [(96, 64)] * 2, (0.05, None, 20))
    assert [len(c) for c in rows["pred_boxes"]] == [20, 20]  # sigmoid(-1) peaks everywhere: the top 20
    assert {len(f) for cell in rows["pred_features"] for f in cell} == {16}
    assert [len(c) for c in rows["gt_features"]] == [2, 0] and len(rows["image_features"][0]) == 16


def test_a_wrong_output_is_explained(store: LocalStore) -> None:
    class NoSizes(FixedHeads):
        def forward(self, x):
            return {"hm": super().forward(x)["hm"]}

    tracer = ObjectDetectionTracer(NoSizes(), "m", "v1", store=store)
    with pytest.raises(ConfigurationError, match=r"must return a dict with 'hm' and 'wh'.*keys \['hm'\]"):
        tracer(torch.zeros(1, 3, 64, 64), GT_LIST[:1])
