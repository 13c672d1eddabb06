"""Tiny detectors of the families the callbacks trace, built offline in well under a second."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SIDE = 48


def tiny_faster_rcnn(num_classes: int = 4) -> nn.Module:
    """A torchvision Faster R-CNN with a two-layer backbone and a 32-d box head."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=4, padding=1))
    backbone.out_channels = 16
    return FasterRCNN(
        backbone, rpn_anchor_generator=AnchorGenerator(sizes=((8, 16),), aspect_ratios=((1.0,),)),
        box_roi_pool=MultiScaleRoIAlign(featmap_names=["0"], output_size=2, sampling_ratio=1),
        box_head=TwoMLPHead(16 * 2 * 2, 32), box_predictor=FastRCNNPredictor(32, num_classes),
        min_size=SIDE, max_size=SIDE, rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=20, box_score_thresh=0.0,
        box_detections_per_img=10,
    )


def tiny_detr(num_labels: int = 3) -> nn.Module:
    """A Hugging Face DETR with a tiny random ResNet backbone (nothing downloaded)."""
    from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

    torch.manual_seed(0)
    backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 8, 8, 8], depths=[1, 1, 1, 1], layer_type="basic",
                            out_features=["stage4"])
    config = DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone, d_model=16,
        encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=16, decoder_ffn_dim=16, num_queries=6, num_labels=num_labels,
    )
    return DetrForObjectDetection(config)


def images_and_targets(n: int, seed: int = 0) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """``n`` random ``(3, SIDE, SIDE)`` images, each with one or two boxes of classes 1-3."""
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for _ in range(n):
        images.append(torch.from_numpy(rng.uniform(size=(3, SIDE, SIDE)).astype(np.float32)))
        k = int(rng.integers(1, 3))
        corner = rng.uniform(0, SIDE / 2, size=(k, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(6, SIDE / 2, size=(k, 2))], axis=1)
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32),
                        "labels": torch.from_numpy(rng.integers(1, 4, size=k))})
    return images, targets
