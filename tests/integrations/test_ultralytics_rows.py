"""Ultralytics validator batches as rows: the letterbox undone as ops.scale_boxes does, ground truth,
ids, file hashes, both prediction layouts, and clear errors for batches it cannot read."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "mld-ultralytics-tests"))
torch = pytest.importorskip("torch")
pytest.importorskip("ultralytics")

from ultralytics.utils import ops

from ml_debugger.exceptions import TraceValidationError
from ml_debugger.integrations._ultralytics_rows import (
    FileHashes,
    batch_rows,
    features_at_centres,
    image_id,
    letterbox_of,
    undo_letterbox,
)
from ml_debugger.integrations.ultralytics import validation_tag
from ml_debugger.tasks._columns import Thresholds

THRESHOLDS = Thresholds(0.001, 0.7, 300)


@pytest.mark.parametrize("seed", range(5))
def test_undo_letterbox_equals_ops_scale_boxes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(20, 400, 2))
    input_shape = (int(rng.integers(1, 5)) * 32, int(rng.integers(1, 5)) * 32)
    gain = min(input_shape[0] / height, input_shape[1] / width)
    new_h, new_w = max(round(height * gain), 1), max(round(width * gain), 1)
    ratio_pad = ((new_h / height, new_w / width), ((input_shape[1] - new_w) // 2, (input_shape[0] - new_h) // 2))
    corners = rng.uniform(-20, max(input_shape) + 20, (30, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)  # some outside the image
    expected = ops.scale_boxes(input_shape, torch.tensor(boxes, dtype=torch.float32), (height, width), ratio_pad)
    ours = undo_letterbox(boxes, letterbox_of(ratio_pad, (height, width), input_shape), (height, width))
    np.testing.assert_allclose(ours, expected.numpy(), atol=1e-3)
    without = ops.scale_boxes(input_shape, torch.tensor(boxes, dtype=torch.float32), (height, width))
    computed = undo_letterbox(boxes, letterbox_of(None, (height, width), input_shape), (height, width))
    np.testing.assert_allclose(computed, without.numpy(), atol=1e-3)


def test_a_single_gain_of_older_versions_is_read() -> None:
    box = letterbox_of(((0.5,), (3, 4)), (100, 200), (64, 128))
    assert (box.gain_x, box.gain_y, box.pad_x, box.pad_y) == (0.5, 0.5, 3.0, 4.0)


def _image(root: Path, name: str, height: int, width: int) -> str:
    from PIL import Image

    path = root / "images" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), sum(map(ord, name)) % 256, np.uint8)).save(path)
    return str(path)


def _batch(root: Path) -> dict:
    """Two images as Ultralytics' val loader gives them: a 100x50 (w x h) image letterboxed into a
    64x64 input (gain 0.64, 16 px of padding above and below) and a 64x64 one (no change)."""
    files = [_image(root, "a.png", 50, 100), _image(root, "b.png", 64, 64)]
    return {
        "img": torch.zeros(2, 3, 64, 64),
        "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
        "cls": torch.tensor([[1.0], [0.0], [2.0]]),
        # xywh normalised to the 64x64 input: [0.5, 0.5, 0.5, 0.25] is the box 16..48 x 24..40
        "bboxes": torch.tensor([[0.5, 0.5, 0.5, 0.25], [0.25, 0.5, 0.25, 0.5], [0.5, 0.5, 1.0, 1.0]]),
        "ori_shape": [(50, 100), (64, 64)],
        "ratio_pad": [((0.64, 0.64), (0, 16)), ((1.0, 1.0), (0, 0))],
        "im_file": files,
    }


def _preds() -> list[dict]:
    return [
        {"bboxes": torch.tensor([[16.0, 24.0, 48.0, 40.0], [-8.0, 0.0, 70.0, 30.0]]), "conf": torch.tensor([0.9, 0.2]),
         "cls": torch.tensor([1.0, 2.0])},
        {"bboxes": torch.zeros(0, 4), "conf": torch.zeros(0), "cls": torch.zeros(0)},
    ]


def test_batch_rows_in_original_pixels(tmp_path: Path) -> None:
    batch = _batch(tmp_path)
    rows = batch_rows(_preds(), batch, root=tmp_path, hashes=FileHashes(), thresholds=THRESHOLDS,
                      label_names=["a", "b", "c"])
    assert list(rows.input_ids) == ["images/a.png", "images/b.png"]
    assert rows.image_sizes.tolist() == [[100, 50], [64, 64]]
    np.testing.assert_allclose(rows.targets[0].boxes, [[25, 12.5, 75, 37.5], [12.5, 0, 37.5, 50]], atol=1e-4)
    np.testing.assert_allclose(rows.targets[1].boxes, [[0, 0, 64, 64]])
    assert rows.targets[0].labels.tolist() == [1, 0] and rows.targets[1].labels.tolist() == [2]
    # (16-0)/0.64 = 25, (24-16)/0.64 = 12.5; the second box is clipped to the image as scale_boxes clips
    np.testing.assert_allclose(rows.predictions[0].boxes, [[25, 12.5, 75, 37.5], [0, 0, 100, 21.875]], atol=1e-4)
    assert rows.predictions[0].labels.tolist() == [1, 2] and len(rows.predictions[1].boxes) == 0
    assert rows.thresholds == THRESHOLDS and rows.label_names == ("a", "b", "c")
    assert rows.predictions[0].features is None and rows.image_features is None


def test_tensor_predictions_and_neck_features(tmp_path: Path) -> None:
    batch = _batch(tmp_path)
    tensors = [torch.cat([p["bboxes"], p["conf"][:, None], p["cls"][:, None]], 1) for p in _preds()]
    maps = [torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)]
    rows = batch_rows(tensors, batch, root=tmp_path, hashes=FileHashes(), thresholds=THRESHOLDS,
                      label_names=None, maps=maps)
    assert rows.predictions[0].features.shape == (2, 10) and rows.predictions[1].features.shape == (0, 10)
    assert rows.targets[0].features.shape == (2, 10) and rows.image_features.shape == (2, 10)
    np.testing.assert_allclose(rows.predictions[0].boxes[0], [25, 12.5, 75, 37.5], atol=1e-4)


def test_previews_show_the_image_without_the_padding(tmp_path: Path) -> None:
    import io

    from PIL import Image

    rows = batch_rows(_preds(), _batch(tmp_path), root=tmp_path, hashes=FileHashes(), thresholds=THRESHOLDS,
                      label_names=None, previews=True)
    sizes = [Image.open(io.BytesIO(jpeg)).size for jpeg in rows.previews]
    assert sizes == [(64, 32), (64, 64)]  # the 100x50 image is 64x32 inside its 64x64 letterbox


def test_batched_features_equal_the_tracers_per_image_sampling() -> None:
    from ml_debugger.training.detection._features import sample_at_centres

    maps = [torch.randn(3, 4, 8, 8), torch.randn(3, 6, 4, 4), torch.randn(3, 2, 2, 2)]
    rng = np.random.default_rng(0)
    boxes = []
    for n in (5, 0, 2):
        corners = rng.uniform(-4, 68, (n, 2, 2))
        boxes.append(np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).astype(np.float32))
    batched = features_at_centres(maps, boxes, (64, 64))
    for i, b in enumerate(boxes):
        expected = sample_at_centres(maps, i, torch.from_numpy(b), (64, 64), by_level=False).half().numpy()
        assert batched[i].shape == (len(b), 12) and batched[i].dtype == np.float16
        np.testing.assert_allclose(batched[i].astype(np.float32), expected.astype(np.float32), atol=1e-3)


def test_file_hashes_follow_the_file_bytes(tmp_path: Path) -> None:
    first, second = _image(tmp_path, "x.png", 8, 8), _image(tmp_path, "y.png", 8, 8)
    hashes = FileHashes()
    before = hashes(first)
    assert before == hashes(first) and before == FileHashes()(first)
    assert hashes(second) != before
    Path(first).write_bytes(Path(first).read_bytes() + b"changed")
    os.utime(first, ns=(1, 1))
    assert hashes(first) != before


def test_ids_relative_to_the_dataset_root(tmp_path: Path) -> None:
    assert image_id(str(tmp_path / "images" / "val" / "1.jpg"), tmp_path) == "images/val/1.jpg"
    assert image_id("/elsewhere/1.jpg", tmp_path) == "/elsewhere/1.jpg"
    assert image_id("/elsewhere/1.jpg", None) == "/elsewhere/1.jpg"


def test_batches_it_cannot_read_name_what_is_wrong(tmp_path: Path) -> None:
    batch = _batch(tmp_path)
    kwargs = {"root": tmp_path, "hashes": FileHashes(), "thresholds": THRESHOLDS, "label_names": None}
    with pytest.raises(TraceValidationError, match=r"no \['ratio_pad'\]"):
        batch_rows(_preds(), {k: v for k, v in batch.items() if k != "ratio_pad"}, **kwargs)
    with pytest.raises(TraceValidationError, match="preds has 1 items but the batch has 2 images"):
        batch_rows(_preds()[:1], batch, **kwargs)
    with pytest.raises(TraceValidationError, match=r"preds\[1\] of the validator is str"):
        batch_rows([_preds()[0], "boxes"], batch, **kwargs)
    with pytest.raises(TraceValidationError, match="expected a dict"):
        batch_rows(_preds(), [batch], **kwargs)
    flipped = _preds()
    flipped[0]["bboxes"] = torch.tensor([[48.0, 24.0, 16.0, 40.0], [0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(TraceValidationError, match="x2 < x1"):
        batch_rows(flipped, batch, **kwargs)


def test_validation_tags() -> None:
    trainer = SimpleNamespace(epoch=4, train_loader=range(10))
    trainer.validator = SimpleNamespace(training=True)
    tag = validation_tag(trainer.validator, trainer, "val", None)
    assert (tag.epoch, tag.global_step, tag.final_validation) == (4, 50, False)
    trainer.validator.training = False  # final_eval: the trainer's validator, called with the best weights
    tag = validation_tag(trainer.validator, trainer, "val", 4)
    assert (tag.epoch, tag.global_step, tag.final_validation) == (5, 50, True)
    standalone = SimpleNamespace(training=False)
    assert validation_tag(standalone, trainer, "test", 5) == validation_tag(standalone, None, "test", 5)
    tag = validation_tag(standalone, None, "test", None)
    assert (tag.dataset_type, tag.epoch, tag.global_step, tag.final_validation) == ("test", 0, None, True)
