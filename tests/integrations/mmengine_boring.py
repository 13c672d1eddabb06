"""A boring MMEngine detector on tiny generated images, to run real Runners with the hook in a
second: MMDetection data samples of images resized to half their size (ground truth loaded after
resizing, as MMDetection's test pipelines do) and a one-layer model that returns
``pred_instances`` in the original image, as MMDetection's ``predict(rescale=True)`` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from mmdet.structures import DetDataSample
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.structures import InstanceData
from torch import nn
from torch.utils.data import Dataset

ORIGINAL = (48, 32)  # width, height of the images before the (pretend) pipeline resized them
SCALE = 0.5
GT_ORIGINAL = [4.0, 4.0, 16.0, 12.0]  # the one object of every image


class BoringImages(Dataset):
    """``n`` images of 3 x 16 x 24 pixels, one object each (label ``index % 2``)."""

    metainfo = {"classes": ("thing", "other")}

    def __init__(self, n: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 255, (n, 3, 16, 24), generator=generator, dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = DetDataSample(
            metainfo={"ori_shape": ORIGINAL[::-1], "img_shape": (16, 24), "scale_factor": (SCALE, SCALE)}
        )
        sample.gt_instances = InstanceData(bboxes=torch.tensor([GT_ORIGINAL]), labels=torch.tensor([index % 2]))
        return {"inputs": self.images[index], "data_samples": sample}


class BoringDetector(BaseModel):
    """One linear layer over each image's mean colour: a box near the object, a score and a label.
    ``inverted=True`` returns boxes with x2 < x1 (a tracing failure)."""

    def __init__(self, inverted: bool = False) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 3)
        self.inverted = inverted

    def forward(
        self, inputs: list[torch.Tensor], data_samples: list[DetDataSample] | None = None, mode: str = "tensor"
    ) -> Any:
        out = self.layer(torch.stack([image.float().mean(dim=(1, 2)) / 255 for image in inputs]))
        if mode == "loss":
            return {"loss": out.pow(2).mean()}
        for sample, row in zip(data_samples, out.detach()):
            box = torch.tensor(GT_ORIGINAL) + row[0]
            sample.pred_instances = InstanceData(
                bboxes=(box[[2, 3, 0, 1]] if self.inverted else box)[None],
                scores=torch.sigmoid(row[1:2]),
                labels=(row[2:3] > 0).long(),
            )
        return data_samples


def loader(dataset: Dataset, *, shuffle: bool = False, batch_size: int = 2) -> dict[str, Any]:
    return dict(
        dataset=dataset, sampler=dict(type="DefaultSampler", shuffle=shuffle), batch_size=batch_size,
        collate_fn=dict(type="pseudo_collate"), num_workers=0,
    )


def boring_runner(
    work_dir: Path, hooks: list[Any], *, model: nn.Module | None = None, n_val: int = 5, iterations: int | None = None,
    test: bool = True,
) -> Runner:
    """A Runner training 2 epochs (or ``iterations`` iterations, validating every 2) with ``hooks``."""
    evaluator = dict(type="DumpResults", out_file_path=str(work_dir / "results.pkl"))
    if iterations is None:
        train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
    else:
        train_cfg = dict(by_epoch=False, max_iters=iterations, val_interval=2)
    return Runner(
        model=model if model is not None else BoringDetector(),
        work_dir=str(work_dir),
        train_dataloader=loader(BoringImages(6, seed=1), shuffle=True),
        val_dataloader=loader(BoringImages(n_val)),
        val_evaluator=evaluator,
        val_cfg=dict(),
        test_dataloader=loader(BoringImages(n_val)) if test else None,
        test_evaluator=evaluator if test else None,
        test_cfg=dict() if test else None,
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
        default_hooks=dict(checkpoint=None, logger=None),
        custom_hooks=hooks,
        log_level="WARNING",
    )
