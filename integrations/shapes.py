"""Images of coloured shapes with known boxes, drawn with numpy: the data of the detection examples.

Each image has one to three non-overlapping shapes on a dark noisy background: a red square
(class 1), a green disc (class 2) or a blue cross (class 3); class 0 is left for torchvision's
background. Boxes are ``[x1, y1, x2, y2]`` in pixels.
"""

from __future__ import annotations

import numpy as np

COLOURS = {1: (0.9, 0.1, 0.1), 2: (0.1, 0.85, 0.1), 3: (0.15, 0.3, 0.95)}
NAMES = ["background", "square", "disc", "cross"]


def _mask(kind: int, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] + 0.5
    if kind == 1:
        return np.ones((size, size), bool)
    if kind == 2:
        return (xx - size / 2) ** 2 + (yy - size / 2) ** 2 <= (size / 2) ** 2
    bar = size // 3
    return (np.abs(xx - size / 2) <= bar / 2) | (np.abs(yy - size / 2) <= bar / 2)


def draw_image(rng: np.random.Generator, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ``(3, side, side)`` float32 image in [0, 1], its boxes ``(n, 4)`` and labels ``(n,)``."""
    image = rng.uniform(0.0, 0.15, size=(3, side, side)).astype(np.float32)
    boxes, labels = [], []
    for _ in range(int(rng.integers(1, 4))):
        size = int(rng.integers(side // 5, side // 2.5))
        for _attempt in range(20):
            x, y = (int(v) for v in rng.integers(0, side - size, size=2))
            box = np.array([x, y, x + size, y + size], np.float32)
            if all(box[0] >= b[2] or box[2] <= b[0] or box[1] >= b[3] or box[3] <= b[1] for b in boxes):
                break
        else:
            continue
        kind = int(rng.integers(1, 4))
        mask = _mask(kind, size)
        for channel, value in enumerate(COLOURS[kind]):
            image[channel, y:y + size, x:x + size][mask] = value
        boxes.append(box)
        labels.append(kind)
    return image, np.stack(boxes), np.asarray(labels, np.int64)


def draw_shapes(n: int, side: int = 64, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``n`` images ``(image (3, side, side), boxes (k, 4) xyxy pixels, labels (k,))``."""
    rng = np.random.default_rng(seed)
    return [draw_image(rng, side) for _ in range(n)]
