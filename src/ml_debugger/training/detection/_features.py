"""Torch feature helpers of the detection tracers: hooks that keep module outputs during one
forward pass, pooled image features, and feature maps sampled at box centres.

Features are returned as float16 numpy (half the storage; enough for neighbour search).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class OutputCapture:
    """Keeps the outputs of some modules during one pass (for names in ``inputs``, the positional
    argument of that index instead).

    Hooks are registered only inside ``armed()`` and removed on leaving it, so the model carries
    none between traced batches (deep copies, EMA copies and checkpoints never see them).
    """

    def __init__(self, modules: Mapping[str, nn.Module], inputs: Mapping[str, int] | None = None) -> None:
        self._modules = dict(modules)
        self._inputs = dict(inputs or {})

    @contextmanager
    def armed(self) -> Iterator[dict[str, Any]]:
        """Capture during the block; yields the dict that receives ``name -> value``."""
        values: dict[str, Any] = {}

        def keep_output(name: str, module: nn.Module, args: tuple, output: Any) -> None:
            values[name] = output

        def keep_input(name: str, module: nn.Module, args: tuple) -> None:
            if len(args) > self._inputs[name]:
                values[name] = args[self._inputs[name]]

        handles = [
            module.register_forward_pre_hook(partial(keep_input, name)) if name in self._inputs
            else module.register_forward_hook(partial(keep_output, name))
            for name, module in self._modules.items()
        ]
        try:
            yield values
        finally:
            for handle in handles:
                handle.remove()


def half_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to(torch.float16).cpu().numpy()


def pooled(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(batch, sum of channels)``: each ``(B, C, H, W)`` map average-pooled, levels concatenated."""
    return torch.cat([m.detach().float().mean(dim=(2, 3)) for m in maps], dim=1)


def sample_at_centres(
    maps: Sequence[torch.Tensor],
    image_index: int,
    boxes: torch.Tensor,
    input_size: tuple[int, int],
    *,
    by_level: bool,
) -> torch.Tensor:
    """``(n, d)`` features of ``maps`` (a pyramid over one input tensor of ``input_size`` (h, w))
    bilinearly sampled at the centres of ``boxes`` (xyxy in pixels of that input tensor).

    ``by_level=False`` concatenates every level (pyramids whose levels differ in channels, such as
    YOLO's neck); ``by_level=True`` takes the level whose anchor size (4 x its stride) is nearest the
    box size, as RetinaNet assigns anchors (levels of equal channels, such as an FPN).
    """
    height, width = input_size
    boxes = boxes.detach().float().reshape(-1, 4)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    scale = torch.tensor([width, height], dtype=centres.dtype, device=centres.device)
    grid = (centres / scale * 2 - 1).reshape(1, 1, -1, 2)
    samples = [  # each (n, C_level); border padding: no fading to zero at the image's edges
        F.grid_sample(
            m[image_index: image_index + 1].detach().float(), grid.to(m.device),
            padding_mode="border", align_corners=False,
        )[0, :, 0].T
        for m in maps
    ]
    if not by_level:
        return torch.cat(samples, dim=1)
    strides = torch.tensor([width / m.shape[-1] for m in maps], device=samples[0].device)
    sizes = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1).sqrt().to(strides.device)
    level = (torch.log2(sizes[:, None] / 4) - torch.log2(strides)[None]).abs().argmin(dim=1)
    stacked = torch.stack(samples, dim=1)  # (n, levels, C)
    return stacked[torch.arange(len(level), device=stacked.device), level]
