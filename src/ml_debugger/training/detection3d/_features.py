"""Per-box features sampled from a detector's bird's-eye-view feature maps.

A forward hook on the module that produces the BEV maps (``(B, C, H, W)``, rows along y and
columns along x, covering ``pc_range`` as voxel grids do in MMDetection3D and OpenPCDet) keeps
them during a traced call. Each box gets the maps' values at its centre (bilinear, all levels
concatenated); each frame gets their spatial mean. Both are stored as float16.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)


class BEVCapture:
    """Keeps the BEV maps of ``module``'s output (``extract`` picks them) while ``capture()`` is open."""

    def __init__(
        self, module: nn.Module, extract: Callable[[Any], list[torch.Tensor]], pc_range: Sequence[float]
    ) -> None:
        self._extract = extract
        self._pc_range = tuple(float(v) for v in pc_range)
        self._armed = False
        self._maps: list[torch.Tensor] | None = None
        self._handle = module.register_forward_hook(self._on_output)

    def _on_output(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self._armed:
            maps = [m.detach() for m in self._extract(output) if isinstance(m, torch.Tensor) and m.ndim == 4]
            self._maps = maps or None

    @contextmanager
    def capture(self) -> Iterator[None]:
        self._armed, self._maps = True, None
        try:
            yield
        finally:
            self._armed = False

    def maps(self, batch: int) -> list[torch.Tensor] | None:
        """The captured maps if they hold ``batch`` frames (not, e.g., after test-time augmentation)."""
        if self._maps is None or any(m.shape[0] != batch for m in self._maps):
            if self._maps is not None:
                logger.info(
                    "ml-debugger: BEV maps of batch %s for %d frames; no features recorded",
                    self._maps[0].shape[0],
                    batch,
                )
            return None
        return self._maps

    def sample(self, maps: list[torch.Tensor], frame: int, centres: np.ndarray) -> np.ndarray:
        """``(n, C)`` float16 features of frame ``frame`` at BEV ``centres`` ``(n, 2)`` [x, y] in metres."""
        if len(centres) == 0:
            return np.zeros((0, sum(level.shape[1] for level in maps)), dtype=np.float16)
        x_min, y_min, _, x_max, y_max, _ = self._pc_range
        normalised = np.stack(
            [2 * (centres[:, 0] - x_min) / (x_max - x_min) - 1, 2 * (centres[:, 1] - y_min) / (y_max - y_min) - 1],
            axis=-1,
        )
        values = []
        for level in maps:
            grid = torch.as_tensor(normalised, dtype=level.dtype, device=level.device).view(1, 1, -1, 2)
            sampled = F.grid_sample(level[frame : frame + 1], grid, mode="bilinear", align_corners=False)
            values.append(sampled[0, :, 0].T)  # (n, C)
        return torch.cat(values, dim=1).float().cpu().numpy().astype(np.float16)

    @staticmethod
    def pooled(maps: list[torch.Tensor]) -> np.ndarray:
        """``(B, C)`` float16 spatial means of the maps, levels concatenated."""
        return torch.cat([m.float().mean(dim=(2, 3)) for m in maps], dim=1).cpu().numpy().astype(np.float16)

    def remove(self) -> None:
        self._handle.remove()
