"""Detection units drawn on an image preview: objects found (green), objects missed (red) and
false positives (orange), scaled from the input image's pixels to the preview's."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.dataset as ds

BOX_COLUMNS = ("x1", "y1", "x2", "y2", "image_width", "image_height", "unit_type", "correct", "epoch")
COLOURS = {"found": (46, 160, 67), "missed": (214, 39, 40), "false_positive": (255, 127, 14)}


def unit_boxes(samples: Path, dataset: str, input_id: str, epoch: int | None) -> list[dict]:
    """The boxes of one input's units at ``epoch`` (its latest evaluated epoch when None); empty
    when the result's units have no boxes (not a 2-D detection result)."""
    data = ds.dataset(samples, format="parquet")
    if not set(BOX_COLUMNS) <= set(data.schema.names):
        return []
    rows = data.to_table(
        columns=list(BOX_COLUMNS), filter=(ds.field("dataset") == dataset) & (ds.field("input_id") == input_id)
    ).to_pylist()
    if not rows:
        return []
    chosen = max(r["epoch"] for r in rows) if epoch is None else epoch
    return [r for r in rows if r["epoch"] == chosen]


def draw_boxes(jpeg: bytes, boxes: list[dict]) -> bytes:
    """``jpeg`` with ``boxes`` drawn on it, as a new JPEG (the preview itself when there are none)."""
    if not boxes:
        return jpeg
    from PIL import Image, ImageDraw

    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    scale = image.width / max(1, boxes[0]["image_width"])
    draw = ImageDraw.Draw(image)
    for box in boxes:
        kind = "false_positive" if box["unit_type"] == "false_positive" else "found" if box["correct"] else "missed"
        corners = [box["x1"] * scale, box["y1"] * scale, box["x2"] * scale, box["y2"] * scale]
        draw.rectangle(corners, outline=COLOURS[kind], width=2)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()
