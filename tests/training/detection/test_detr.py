"""The DETR family: Hugging Face DETR / Conditional DETR / Deformable DETR (tiny random configs)
give the detections of their own image processors' post-processing; facebookresearch-style
modules are read the same way; decoder query embeddings are the per-detection features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from transformers import (
    ConditionalDetrConfig,
    ConditionalDetrForObjectDetection,
    ConditionalDetrImageProcessor,
    DeformableDetrConfig,
    DeformableDetrForObjectDetection,
    DeformableDetrImageProcessor,
    DetrConfig,
    DetrForObjectDetection,
    DetrImageProcessor,
    ResNetConfig,
)

from ml_debugger.store import LocalStore
from ml_debugger.training import ObjectDetectionTracer
from tests.training.detection.conftest import GT_LIST, boxes_of, check_rows, read_rows

BACKBONE = {"embedding_size": 8, "hidden_sizes": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "layer_type": "basic",
            "out_features": ["stage2", "stage3", "stage4"]}
TINY = {"use_timm_backbone": False, "use_pretrained_backbone": False, "d_model": 32, "encoder_layers": 1,
        "decoder_layers": 1, "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 32,
        "decoder_ffn_dim": 32, "num_queries": 10, "num_labels": 3}
HF = {
    "DETRTracer": (DetrConfig, DetrForObjectDetection, DetrImageProcessor, {}, {}),
    "ConditionalDETRTracer": (ConditionalDetrConfig, ConditionalDetrForObjectDetection, ConditionalDetrImageProcessor,
                              {}, {"top_k": 100}),
    "DeformableDETRTracer": (DeformableDetrConfig, DeformableDetrForObjectDetection, DeformableDetrImageProcessor,
                             {"num_feature_levels": 3, "encoder_n_points": 2, "decoder_n_points": 2,
                              "decoder_layers": 2}, {"top_k": 100}),
}


def hf_model(name: str) -> nn.Module:
    config_class, model_class, _, extra, _ = HF[name]
    torch.manual_seed(0)
    config = config_class(backbone_config=ResNetConfig(**BACKBONE), **{**TINY, **extra})
    config.id2label = {0: "cat", 1: "dog", 2: "bird"}
    return model_class(config).eval()


@pytest.mark.parametrize("name", list(HF))
def test_hf_detr_equals_its_image_processor(store: LocalStore, name: str) -> None:
    model = hf_model(name)
    tracer = ObjectDetectionTracer(model, "m", "v1", store=store)
    assert type(tracer).__name__ == name
    max_det = 10 if name == "DETRTracer" else 100  # every query / the family's top-k
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_image) == (0.05, None, max_det)
    assert tracer.label_names == ("cat", "dog", "bird") and tracer.num_classes == 3

    pixels = torch.rand(2, 3, 64, 80, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 64, 80, dtype=torch.long)
    mask[1, 48:, :] = 0  # the second image is 60 x 48, padded
    mask[1, :, 60:] = 0
    inputs = {"pixel_values": pixels, "pixel_mask": mask}
    out = tracer(inputs, GT_LIST, input_ids=[0, 1], dataset_type="val")
    with torch.no_grad():
        expected = model(**inputs)
    torch.testing.assert_close(out.logits.detach(), expected.logits)
    assert out.logits.requires_grad

    _, _, processor_class, _, options = HF[name]
    processed = processor_class().post_process_object_detection(
        expected, threshold=0.05, target_sizes=[(64, 80), (48, 60)], **options
    )
    tracer.wait_for_save()
    rows = read_rows(store)
    check_rows(rows, [(80, 64), (60, 48)], (0.05, None, max_det))
    assert list(rows["label_names"][0]) == ["cat", "dog", "bird"]
    for i, result in enumerate(processed):
        order = torch.argsort(result["scores"], descending=True, stable=True).numpy()
        np.testing.assert_allclose(rows["pred_scores"][i], result["scores"].numpy()[order], rtol=1e-5)
        assert list(rows["pred_labels"][i]) == result["labels"].numpy()[order].tolist()
        width, height = (80, 64) if i == 0 else (60, 48)
        clipped = np.clip(result["boxes"].numpy()[order], 0, [width, height, width, height])
        np.testing.assert_allclose(boxes_of(rows["pred_boxes"][i]), clipped, rtol=1e-5, atol=1e-4)
    assert {len(f) for cell in rows["pred_features"] for f in cell} == {32}  # decoder query embeddings
    assert len(rows["image_features"][0]) == 32 and "gt_features" not in rows


def test_iou_thresh_is_ignored_with_a_warning(store: LocalStore) -> None:
    with pytest.warns(UserWarning, match="does not use NMS; iou_thresh=0.3 is ignored"):
        tracer = ObjectDetectionTracer(hf_model("DETRTracer"), "m", "v1", iou_thresh=0.3, store=store)
    assert tracer.iou_thresh is None


class TinyTransformer(nn.Module):
    """Returns what facebookresearch's DETR transformer returns: (decoder states per layer, memory)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(d, 2, 32, batch_first=True), 1)

    def forward(self, src: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        memory = src.flatten(2).transpose(1, 2)
        hs = self.decoder(queries.expand(len(src), -1, -1), memory)
        return hs[None], memory


class FacebookDETR(nn.Module):
    """A facebookresearch-style DETR (class_embed / bbox_embed / query_embed / transformer)."""

    def __init__(self, num_classes: int = 3, queries: int = 8, d: int = 16, extra_class: int = 1) -> None:
        super().__init__()
        self.num_queries = queries
        self.backbone = nn.Sequential(nn.Conv2d(3, d, 8, stride=8), nn.ReLU())
        self.transformer = TinyTransformer(d)
        self.query_embed = nn.Embedding(queries, d)
        self.class_embed = nn.Linear(d, num_classes + extra_class)
        self.bbox_embed = nn.Linear(d, 4)

    def forward(self, samples):
        batch = samples if isinstance(samples, torch.Tensor) else torch.stack(list(samples))
        hs, _ = self.transformer(self.backbone(batch), self.query_embed.weight)
        return {"pred_logits": self.class_embed(hs[-1]), "pred_boxes": self.bbox_embed(hs[-1]).sigmoid()}


class DeformableDETR(FacebookDETR):
    """Named as facebookresearch's Deformable DETR: sigmoid scores over the classes (no extra class)."""

    def __init__(self) -> None:
        super().__init__(extra_class=0)


@pytest.mark.parametrize(("model_class", "name", "max_det"), [(FacebookDETR, "DETRTracer", 8),
                                                              (DeformableDETR, "DeformableDETRTracer", 100)])
def test_facebookresearch_style_detr(store: LocalStore, model_class, name: str, max_det: int) -> None:
    torch.manual_seed(0)
    model = model_class().eval()
    tracer = ObjectDetectionTracer(model, "m", "v1", store=store)
    assert type(tracer).__name__ == name and tracer.num_classes == 3
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_image) == (0.05, None, max_det)
    images = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    queries = {}

    def keep_queries(module, args, output) -> None:
        queries["hs"] = output[0][-1].detach()

    model.transformer.register_forward_hook(keep_queries)
    out = tracer(images, GT_LIST, dataset_type="val")
    assert set(out) == {"pred_logits", "pred_boxes"}
    tracer.wait_for_save()
    rows = read_rows(store)
    check_rows(rows, [(96, 64)] * 2, (0.05, None, max_det))
    logits, boxes = out["pred_logits"].detach(), out["pred_boxes"].detach()
    if name == "DETRTracer":
        scores = logits.softmax(-1)[..., :-1].max(-1).values
        order = scores[0].argsort(descending=True)
        np.testing.assert_allclose(rows["pred_scores"][0], scores[0][order].numpy(), rtol=1e-5)
        cx, cy, w, h = boxes[0][order].unbind(-1)
        expected = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * torch.tensor([96, 64, 96, 64])
        clipped = expected.numpy().clip(0, [96, 64, 96, 64])
        np.testing.assert_allclose(boxes_of(rows["pred_boxes"][0]), clipped, rtol=1e-5, atol=1e-4)
        features = np.stack(rows["pred_features"][0])
        np.testing.assert_allclose(features, queries["hs"][0][order].numpy(), rtol=2e-3, atol=2e-3)
    else:
        assert len(rows["pred_scores"][0]) == 3 * 8  # top-100 of 8 queries x 3 classes, all above 0.05
    assert len(rows["image_features"][0]) == 16
