"""The part every torch detection tracer shares: reading image batches, rank, running the model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.training.detection._arrays import ImageBatch, image_batch, to_numpy
from ml_debugger.training.detection._base import DetectionTracer


def torch_image_batch(inputs: Any) -> ImageBatch:
    """Sizes and hashes of a ``(B, C, H, W)`` tensor, a list of ``(C, H, W)`` tensors, or a Hugging
    Face dict with ``pixel_values`` (sizes from ``pixel_mask`` when given: the unpadded images)."""
    if isinstance(inputs, Mapping):
        if "pixel_values" not in inputs:
            raise TraceValidationError(f"inputs as a dict needs 'pixel_values'; it has {sorted(inputs)}")
        batch = torch_image_batch(inputs["pixel_values"])
        mask = inputs.get("pixel_mask")
        if mask is None:
            return batch
        mask = to_numpy(mask).astype(bool)
        if mask.shape != (len(batch), *batch_hw(inputs["pixel_values"])):
            raise TraceValidationError(f"inputs['pixel_mask'] must be (batch, height, width); got shape {mask.shape}")
        sizes = np.stack([mask.any(axis=1).sum(axis=1), mask.any(axis=2).sum(axis=1)], axis=1)
        pixels = tuple(image[:, :h, :w] for image, (w, h) in zip(batch.pixels, sizes))  # without the padding
        return ImageBatch(sizes.astype(np.int64), batch.hashes, pixels)
    if isinstance(inputs, torch.Tensor):
        return image_batch(to_numpy(inputs), channels_last=False)
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(i, torch.Tensor) for i in inputs):
        return image_batch([to_numpy(i) for i in inputs], channels_last=False)
    raise TraceValidationError(
        "inputs must be a (batch, channels, height, width) tensor or a list of (channels, height, width) "
        f"tensors; got {type(inputs).__name__}"
    )


def batch_hw(tensor: torch.Tensor) -> tuple[int, int]:
    return int(tensor.shape[-2]), int(tensor.shape[-1])


def require_eval(module: nn.Module, family: str) -> None:
    """ConfigurationError when ``module`` is in training mode (its output then is not detections)."""
    if module.training:
        raise ConfigurationError(
            f"the {family} model is in training mode, where it returns losses or raw head outputs instead of "
            "detections; the tracer records validation: call model.eval() before tracing"
        )


class TorchDetectionTracer(DetectionTracer):
    """A detection tracer of a ``torch.nn.Module``: the model runs as ``model(inputs)`` (``model(**inputs)``
    for a dict), outside any ``torch.no_grad()`` the caller did not choose."""

    def _read_images(self, inputs: Any) -> ImageBatch:
        return torch_image_batch(inputs)

    def _forward(self, inputs: Any) -> Any:
        return self.model(**inputs) if isinstance(inputs, Mapping) else self.model(inputs)
