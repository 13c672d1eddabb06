"""Fine-tune a tiny DETR on drawn shapes with the Hugging Face Trainer, traced by ml-debugger.

Runs offline on CPU (a small random DetrConfig with a tiny ResNet backbone, nothing downloaded):
``python integrations/transformers/transformers_detr_shapes.py``. Then evaluate:

    from ml_debugger.evaluator import Evaluator
    Evaluator("shapes-detr", "hf-v1").request_evaluation(n_epoch=None).metrics_summary()

The data follows Hugging Face's object-detection fine-tuning recipe: COCO-style annotations
through ``DetrImageProcessor``, labels with normalised ``(cx, cy, w, h)`` boxes. The only
ml-debugger line is the callback passed to ``Trainer``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import (
    DetrConfig,
    DetrForObjectDetection,
    DetrImageProcessor,
    ResNetConfig,
    Trainer,
    TrainingArguments,
)

from ml_debugger.integrations.transformers import MLDebuggerCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # integrations/shapes.py draws the images
from shapes import NAMES, draw_shapes  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SIDE, RESIZED = 64, 96  # drawn images are 64 px; the processor resizes them to 96 px
CLASSES = NAMES[1:]  # DETR's class ids start at 0: square, disc, cross


def tiny_detr() -> DetrForObjectDetection:
    backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1], layer_type="basic",
                            out_features=["stage4"])
    config = DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone, d_model=32,
        encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=10, num_labels=len(CLASSES),
        id2label=dict(enumerate(CLASSES)), label2id={name: i for i, name in enumerate(CLASSES)},
    )
    return DetrForObjectDetection(config)


def processor() -> DetrImageProcessor:
    return DetrImageProcessor(size={"height": RESIZED, "width": RESIZED}, image_mean=[0.0] * 3, image_std=[1.0] * 3,
                              do_rescale=False)


class Shapes(Dataset):
    """``{"pixel_values", "labels"}`` per image, made by the image processor from COCO annotations."""

    def __init__(self, n: int, seed: int) -> None:
        self.processor = processor()
        self.items = draw_shapes(n, SIDE, seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        image, boxes, labels = self.items[i]
        annotations = [
            {"bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], "category_id": int(label) - 1,
             "area": float((x2 - x1) * (y2 - y1)), "iscrowd": 0}
            for (x1, y1, x2, y2), label in zip(boxes, labels)
        ]
        encoded = self.processor(images=image.transpose(1, 2, 0), annotations={"image_id": i, "annotations": annotations},
                                 input_data_format="channels_last", return_tensors="pt")
        return {"pixel_values": encoded["pixel_values"][0], "labels": encoded["labels"][0]}


def collate(batch: list[dict]) -> dict:
    return {
        "pixel_values": torch.stack([item["pixel_values"] for item in batch]),
        "pixel_mask": torch.ones(len(batch), RESIZED, RESIZED, dtype=torch.long),  # all images are the same size
        "labels": [item["labels"] for item in batch],
    }


def main(epochs: int = 2, n_train: int = 32, n_val: int = 16, model_name: str = "shapes-detr",
         version_name: str = "hf-v1") -> Trainer:
    torch.manual_seed(0)
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="detr-shapes-"), num_train_epochs=epochs, per_device_train_batch_size=8,
        per_device_eval_batch_size=8, learning_rate=5e-3, eval_strategy="epoch", save_strategy="no",
        logging_strategy="no", report_to=[], use_cpu=True, remove_unused_columns=False, disable_tqdm=True,
        dataloader_num_workers=0, seed=0,
    )
    trainer = Trainer(
        model=tiny_detr(), args=args, train_dataset=Shapes(n_train, seed=0), eval_dataset=Shapes(n_val, seed=1),
        data_collator=collate,
        callbacks=[MLDebuggerCallback(model_name, version_name)],  # <- the one line ml-debugger needs
    )
    trainer.train()
    return trainer


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    main(parser.parse_args().epochs)
