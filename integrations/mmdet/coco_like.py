"""A tiny COCO-layout dataset written from scratch: 80 x 60 noisy grey images with one or two
flat-coloured boxes each, ``images/*.png`` and ``annotations/instances_{train,val}.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (80, 60)  # width, height


def _image(rng: np.random.Generator) -> tuple[np.ndarray, list[list[float]]]:
    pixels = rng.integers(90, 140, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    boxes = []
    for _ in range(int(rng.integers(1, 3))):
        w, h = (int(v) for v in rng.integers(14, 30, 2))
        x, y = int(rng.integers(0, SIZE[0] - w)), int(rng.integers(0, SIZE[1] - h))
        pixels[y:y + h, x:x + w] = rng.integers(0, 255, 3)
        boxes.append([float(x), float(y), float(w), float(h)])
    return pixels, boxes


def write_coco_like(root: Path, n_train: int, n_val: int, seed: int = 0) -> dict[str, dict[int, list[list[float]]]]:
    """Write the dataset under ``root``; returns each split's xywh boxes by COCO image id."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    written: dict[str, dict[int, list[list[float]]]] = {}
    image_id = 100  # COCO ids are not dataset indices
    for split, count in (("train", n_train), ("val", n_val)):
        images, annotations, written[split] = [], [], {}
        for _ in range(count):
            image_id += 1
            pixels, boxes = _image(rng)
            name = f"{image_id:06d}.png"
            Image.fromarray(pixels).save(root / "images" / name)
            images.append({"id": image_id, "file_name": name, "width": SIZE[0], "height": SIZE[1]})
            for box in boxes:
                annotations.append({
                    "id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "bbox": box,
                    "area": box[2] * box[3], "iscrowd": 0,
                })
            written[split][image_id] = boxes
        coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "box"}]}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    return written
