"""Train YOLOv8n (built from its yaml) on a generated shapes dataset with ml-debugger tracing every
validation, then evaluate every traced epoch.

    python integrations/ultralytics/yolo_shapes.py  [--epochs 2] [--out ./yolo-shapes]

Runs offline on CPU in well under a minute: the dataset is generated (YOLO format: images/ and
labels/ per split and a data.yaml), Ultralytics' settings and font live in a temporary directory.
The one line that adds ml-debugger is marked below.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("rectangle", "ellipse", "triangle")
COLOURS = ((230, 60, 60), (60, 200, 60), (70, 110, 240))


def offline_ultralytics(config_dir: Path) -> None:
    """Keep Ultralytics off the network: no update checks, settings in ``config_dir`` and a font it
    would otherwise download (call before importing ultralytics)."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    font = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        import matplotlib

        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)


def _draw(draw: ImageDraw.ImageDraw, kind: int, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if kind == 0:
        draw.rectangle(box, fill=COLOURS[kind])
    elif kind == 1:
        draw.ellipse(box, fill=COLOURS[kind])
    else:
        draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=COLOURS[kind])


def make_dataset(root: Path, n_train: int = 32, n_val: int = 16, size: int = 80, seed: int = 0) -> Path:
    """``size`` x ``size`` images with one or two large filled shapes on a noisy background, YOLO
    labels, and the ``data.yaml``; returns the yaml's path."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            width = height = size
            noise = rng.integers(0, 70, (height, width, 3), dtype=np.uint8)
            image = Image.fromarray(noise)
            draw = ImageDraw.Draw(image)
            lines = []
            for _ in range(int(rng.integers(1, 3))):
                kind = int(rng.integers(0, len(CLASSES)))
                w, h = int(rng.integers(width // 2, width)), int(rng.integers(height // 2, height))
                x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
                _draw(draw, kind, (x0, y0, x0 + w - 1, y0 + h - 1))
                centre = ((x0 + w / 2) / width, (y0 + h / 2) / height)
                lines.append(f"{kind} {centre[0]:.6f} {centre[1]:.6f} {w / width:.6f} {h / height:.6f}")
            image.save(root / "images" / split / f"{split}_{i:03d}.png")
            (root / "labels" / split / f"{split}_{i:03d}.txt").write_text("\n".join(lines) + "\n")
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASSES))
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return data


def train(data: Path, out: Path, model_name: str, version_name: str, *, epochs: int = 2, imgsz: int = 64,
          **train_args: Any) -> Any:
    """Train YOLOv8n from its yaml with every validation traced; returns Ultralytics' final metrics."""
    from ultralytics import YOLO

    from ml_debugger.integrations.ultralytics import add_mldebugger_callbacks

    model = YOLO("yolov8n.yaml")
    add_mldebugger_callbacks(model, model_name=model_name, version_name=version_name)  # the one line
    return model.train(
        data=str(data), epochs=epochs, imgsz=imgsz, batch=8, device="cpu", workers=0, plots=False,
        project=str(out), name="train", exist_ok=True, seed=0, deterministic=True, verbose=False,
        **train_args,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("yolo-shapes"))
    args = parser.parse_args(argv)
    offline_ultralytics(Path(tempfile.mkdtemp(prefix="yolo-config-")))
    data = make_dataset(args.out.resolve() / "data")
    metrics = train(data, args.out.resolve() / "runs", "yolo-shapes", "v1", epochs=args.epochs)
    print(f"Ultralytics' final validation: mAP50-95 {metrics.box.map:.4f}, mAP50 {metrics.box.map50:.4f}")

    from ml_debugger.evaluator import Evaluator

    Evaluator("yolo-shapes", "v1").request_evaluation(n_epoch=None).get_summary()


if __name__ == "__main__":
    main()
