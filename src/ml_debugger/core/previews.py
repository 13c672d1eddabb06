"""Small JPEG previews of image inputs, for the dashboard's sample tables (``previews=True``).

A preview is the image scaled to at most ``MAX_SIDE`` pixels on its longer side, its values
stretched to 0-255 per image (inputs are usually normalised), encoded as JPEG. It costs about
2-5 KB per image (20-50 MB per 10k images) and a few tenths of a millisecond per image to make.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from ml_debugger.exceptions import TraceValidationError

MAX_SIDE = 128
JPEG_QUALITY = 80


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("previews=True needs Pillow to encode JPEG: pip install pillow") from exc
    return Image


def image_layout(array: np.ndarray) -> np.ndarray:
    """One image as ``(H, W, C)`` with C in 1 or 3 (``(C, H, W)`` and ``(H, W)`` accepted)."""
    image = np.asarray(array)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[-1] not in (1, 3, 4):
        image = np.moveaxis(image, 0, -1)
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise TraceValidationError(
            f"previews need image inputs of shape (C, H, W), (H, W, C) or (H, W); got {np.shape(array)}"
        )
    return image[..., :3]


def encode_previews(images: Sequence[np.ndarray]) -> list[bytes]:
    """A JPEG preview of each image (see the module doc)."""
    image_module = _pil()
    out = []
    for array in images:
        image = image_layout(array).astype(np.float32)
        low, high = float(np.nanmin(image)), float(np.nanmax(image))
        scaled = np.zeros_like(image) if high <= low else (image - low) * (255.0 / (high - low))
        pixels = np.nan_to_num(scaled).clip(0, 255).astype(np.uint8)
        picture = image_module.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        picture.thumbnail((MAX_SIDE, MAX_SIDE))
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        out.append(buffer.getvalue())
    return out
