"""Train a tiny torchvision Faster R-CNN on drawn shapes with PyTorch Lightning, traced by ml-debugger.

Run it as it is (``python integrations/lightning/lightning_fasterrcnn_shapes.py``), then evaluate:

    from ml_debugger.evaluator import Evaluator
    Evaluator("shapes-frcnn", "lightning-v1").request_evaluation(n_epoch=None).metrics_summary()

The only ml-debugger line is the callback passed to ``Trainer``: it finds the Faster R-CNN inside
the LightningModule and records the detections its own ``validation_step`` computes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign

from ml_debugger.integrations.lightning import MLDebuggerCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # integrations/shapes.py draws the images
from shapes import NAMES, draw_shapes  # noqa: E402

SIDE = 64


def tiny_faster_rcnn(num_classes: int = len(NAMES)) -> FasterRCNN:
    """A Faster R-CNN with a three-layer backbone (stride 8, 32 channels) and a 64-d box head."""
    backbone = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
    )
    backbone.out_channels = 32
    return FasterRCNN(
        backbone,
        rpn_anchor_generator=AnchorGenerator(sizes=((12, 20, 28),), aspect_ratios=((1.0,),)),
        box_roi_pool=MultiScaleRoIAlign(featmap_names=["0"], output_size=4, sampling_ratio=2),
        box_head=TwoMLPHead(32 * 4 * 4, 64),
        box_predictor=FastRCNNPredictor(64, num_classes),
        min_size=SIDE, max_size=SIDE, image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0],
        rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100, rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=50, box_batch_size_per_image=64, box_score_thresh=0.05,
    )


class Shapes(Dataset):
    """``(image (3, H, W), {"boxes", "labels"})`` pairs: the reference's ground-truth format."""

    def __init__(self, n: int, seed: int) -> None:
        self.items = draw_shapes(n, SIDE, seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        image, boxes, labels = self.items[i]
        return torch.from_numpy(image), {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)}


def collate(batch):
    images, targets = zip(*batch)
    return list(images), list(targets)


class ShapesDetector(pl.LightningModule):
    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        self.lr = lr
        self.model = tiny_faster_rcnn()

    def training_step(self, batch, batch_idx):
        images, targets = batch
        loss = sum(self.model(images, targets).values())  # train mode: the losses
        self.log("train_loss", loss, batch_size=len(images))
        return loss

    def validation_step(self, batch, batch_idx):
        images, targets = batch
        detections = self.model(images)  # eval mode: per-image boxes, scores, labels
        found = sum(len(d["boxes"]) for d in detections)
        self.log("val_detections", float(found), batch_size=len(images))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def main(
    epochs: int = 2, n_train: int = 64, n_val: int = 24, model_name: str = "shapes-frcnn",
    version_name: str = "lightning-v1",
) -> None:
    pl.seed_everything(0)
    train = DataLoader(Shapes(n_train, seed=0), batch_size=8, shuffle=True, collate_fn=collate)
    val = DataLoader(Shapes(n_val, seed=1), batch_size=8, collate_fn=collate)  # not shuffled: ids = indices
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        callbacks=[MLDebuggerCallback(model_name, version_name, label_names=NAMES)],  # <- the one ml-debugger line
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(ShapesDetector(), train, val)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    main(parser.parse_args().epochs)
