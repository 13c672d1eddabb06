"""The callbacks trace detectors in real (tiny, offline) runs: the Hugging Face Trainer's DETR rows
equal its image processor's post-processing, Lightning finds the detector in the module, and
``previews=True`` puts previews in the evaluation's previews table for each callback."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")

from ml_debugger.evaluator import Evaluator
from ml_debugger.exceptions import ConfigurationError
from ml_debugger.store import LocalStore
from tests.integrations.tiny_detectors import SIDE, images_and_targets, tiny_detr, tiny_faster_rcnn


def previews_of(model_name: str) -> list[bytes]:
    previews = Evaluator(model_name, "v1").request_evaluation(n_epoch=None).tables["previews"]
    return list(previews["preview"])


# -- Hugging Face Trainer ----------------------------------------------------------------------


def hf_eval_set(n: int) -> list[dict]:
    from transformers import DetrImageProcessor

    processor = DetrImageProcessor(size={"height": 64, "width": 64}, do_rescale=False)
    images, targets = images_and_targets(n)
    out = []
    for i, (image, target) in enumerate(zip(images, targets)):
        boxes = target["boxes"].numpy()
        annotations = [{"bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], "category_id": int(c) - 1,
                        "area": float((x2 - x1) * (y2 - y1)), "iscrowd": 0}
                       for (x1, y1, x2, y2), c in zip(boxes, target["labels"])]
        encoded = processor(images=image.numpy(), annotations={"image_id": i, "annotations": annotations},
                            input_data_format="channels_first", return_tensors="pt")
        out.append({"pixel_values": encoded["pixel_values"][0], "labels": encoded["labels"][0]})
    return out


def hf_collate(batch: list[dict]) -> dict:
    pixels = torch.stack([b["pixel_values"] for b in batch])
    return {"pixel_values": pixels, "pixel_mask": torch.ones(len(batch), *pixels.shape[-2:], dtype=torch.long),
            "labels": [b["labels"] for b in batch]}


def test_trainer_evaluate_records_what_post_process_object_detection_gives(tmp_path: Path, store: LocalStore) -> None:
    transformers = pytest.importorskip("transformers")
    from ml_debugger.integrations.transformers import MLDebuggerCallback

    model, data = tiny_detr(), hf_eval_set(5)
    callback = MLDebuggerCallback("detr", "v1", store=store, previews=True, score_thresh=0.2)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=2, report_to=[],
                                          use_cpu=True, remove_unused_columns=False, disable_tqdm=True)
    trainer = transformers.Trainer(model=model, args=args, eval_dataset=data, data_collator=hf_collate,
                                   callbacks=[callback])
    trainer.evaluate()
    assert store.model_task("detr") == "detection2d"  # found from the model

    rows = store.read_traces("detr", "v1", None).to_pandas()
    assert rows["input_id"].tolist() == [str(i) for i in range(5)] and set(rows["epoch"]) == {0}
    assert rows["image_width"].tolist() == [SIDE] * 5  # the original size, from the labels' orig_size
    model.eval()
    batch = hf_collate(data)
    with torch.no_grad():
        outputs = model(pixel_values=batch["pixel_values"], pixel_mask=batch["pixel_mask"])
    expected = transformers.DetrImageProcessor().post_process_object_detection(
        outputs, threshold=0.2, target_sizes=[(SIDE, SIDE)] * 5
    )
    assert sum(len(e["scores"]) for e in expected) > 0
    for row, want in zip(rows.itertuples(), expected):
        order = want["scores"].argsort(descending=True)
        np.testing.assert_allclose(row.pred_scores, want["scores"][order].numpy(), rtol=1e-5)
        assert list(row.pred_labels) == want["labels"][order].tolist()
        np.testing.assert_allclose(np.stack(row.pred_boxes) if len(row.pred_boxes) else np.zeros((0, 4)),
                                   want["boxes"][order].clamp(0, SIDE).numpy().reshape(-1, 4), atol=1e-3)
    for cell, target in zip(rows["gt_boxes"], images_and_targets(5)[1]):  # normalised cxcywh -> xyxy pixels
        np.testing.assert_allclose(np.stack(cell), target["boxes"].numpy(), atol=1e-3)
    assert len(previews_of("detr")) == 5


def test_trainer_image_classification_stores_previews(tmp_path: Path, store: LocalStore) -> None:
    transformers = pytest.importorskip("transformers")
    from ml_debugger.integrations.transformers import MLDebuggerCallback

    torch.manual_seed(0)
    config = transformers.ResNetConfig(embedding_size=4, hidden_sizes=[4, 4], depths=[1, 1], num_labels=2)
    model = transformers.ResNetForImageClassification(config)
    data = [{"pixel_values": torch.rand(3, 16, 16), "labels": i % 2} for i in range(6)]
    args = transformers.TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=4, report_to=[],
                                          use_cpu=True, disable_tqdm=True)
    callback = MLDebuggerCallback("resnet-previews", "v1", store=store, previews=True, strict=True)
    transformers.Trainer(model=model, args=args, eval_dataset=data, callbacks=[callback]).evaluate()
    assert store.model_task("resnet-previews") == "classification"
    assert len(previews_of("resnet-previews")) == 6


# -- Lightning ---------------------------------------------------------------------------------


def lightning_module():
    pl = pytest.importorskip("lightning.pytorch")

    class Wrapper(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = tiny_faster_rcnn()

        def training_step(self, batch, batch_idx):
            images, targets = batch
            return sum(self.net(images, targets).values())

        def validation_step(self, batch, batch_idx):
            images, _ = batch
            self.net(images)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return pl, Wrapper()


def loader(n: int, seed: int):
    images, targets = images_and_targets(n, seed)
    return torch.utils.data.DataLoader(list(zip(images, targets)), batch_size=3,
                                       collate_fn=lambda b: tuple(list(part) for part in zip(*b)))


def fit(pl, module, callback) -> None:
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", callbacks=[callback], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0,
                         limit_train_batches=1)
    trainer.fit(module, loader(3, 0), loader(5, 1))


def test_lightning_finds_the_detector_and_stores_previews(store: LocalStore) -> None:
    pl, module = lightning_module()
    from ml_debugger.integrations.lightning import MLDebuggerCallback

    fit(pl, module, MLDebuggerCallback("frcnn", "v1", store=store, previews=True, max_detections_per_image=4))
    assert store.model_task("frcnn") == "detection2d"
    rows = store.read_traces("frcnn", "v1", None).to_pandas()
    assert rows["input_id"].tolist() == [str(i) for i in range(5)]
    assert rows["max_detections"].tolist() == [4] * 5 and max(len(s) for s in rows["pred_scores"]) <= 4
    assert {len(f) for cell in rows["pred_features"] for f in cell} == {32}
    assert len(previews_of("frcnn")) == 5


def test_lightning_detection_errors_name_the_cause(store: LocalStore) -> None:
    pl, module = lightning_module()
    from ml_debugger.core import TraceSession
    from ml_debugger.integrations.lightning import MLDebuggerCallback

    with pytest.raises(ConfigurationError, match="detector_module 'nope' is not a submodule"):
        fit(pl, module, MLDebuggerCallback("frcnn", "v1", store=store, strict=True, detector_module="nope"))
    session = TraceSession("frcnn", "v2", "classification", store=store)
    with pytest.raises(ConfigurationError, match="session is of task 'classification' but the model is traced as 'detection2d'"):
        fit(pl, module, MLDebuggerCallback(session=session, strict=True))
    with pytest.warns(RuntimeWarning, match="detector_module 'nope'"):  # not strict: training goes on
        fit(pl, module, MLDebuggerCallback("frcnn", "v3", store=store, detector_module="nope"))


def test_lightning_task_detection2d_reads_the_modules_own_torchvision_format_output(store: LocalStore) -> None:
    """No detector of a known family inside: with task="detection2d" the module's own forward is
    read as torchvision-format output; ids come from a dict batch."""
    pl = pytest.importorskip("lightning.pytorch")
    from ml_debugger.integrations.lightning import MLDebuggerCallback

    class OneBox(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(10.0))

        def forward(self, images):
            box = torch.stack([torch.tensor(0.0), torch.tensor(0.0), self.scale, self.scale])
            return [{"boxes": box[None], "scores": torch.tensor([0.9]), "labels": torch.tensor([1])} for _ in images]

        def training_step(self, batch, batch_idx):
            return (self(batch["images"])[0]["boxes"].sum() - 12.0) ** 2

        def validation_step(self, batch, batch_idx):
            self(batch["images"])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.001)

    images, targets = images_and_targets(4)
    batches = [{"images": images[i:i + 2], "targets": targets[i:i + 2], "ids": [f"img-{i}", f"img-{i + 1}"]}
               for i in (0, 2)]
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, num_sanity_val_steps=0,
                         callbacks=[MLDebuggerCallback("onebox", "v1", store=store, task="detection2d", strict=True)])
    def loader_of(items: list[dict]):
        return torch.utils.data.DataLoader(items, batch_size=None)  # each item is a batch

    trainer.fit(OneBox(), loader_of(batches[:1]), loader_of(batches))
    rows = store.read_traces("onebox", "v1", None).to_pandas()
    assert rows["input_id"].tolist() == ["img-0", "img-1", "img-2", "img-3"]
    assert [len(b) for b in rows["pred_boxes"]] == [1] * 4 and [len(b) for b in rows["gt_boxes"]] == [
        len(t["boxes"]) for t in targets]


# -- Keras ---------------------------------------------------------------------------------------


def test_keras_classification_stores_previews(store: LocalStore) -> None:
    keras = pytest.importorskip("keras")
    from ml_debugger.integrations.keras import MLDebuggerCallback

    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(12, 8, 8, 3)).astype("float32"), rng.integers(0, 2, size=12)
    net = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    net.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(x, y, epochs=1, verbose=0,
            callbacks=[MLDebuggerCallback("keras-previews", "v1", validation_data=(x, y), store=store, previews=True)])
    previews = previews_of("keras-previews")
    assert len(previews) == 12 and all(p[:2] == b"\xff\xd8" for p in previews)  # JPEG


def test_keras_detector_with_a_pydataset_and_the_training_split(store: LocalStore) -> None:
    """The callback as Keras drives it, on a KerasHub-style detector: per-image targets from a
    PyDataset (ids by position) and the training split as padded targets (the format fit takes)."""
    keras = pytest.importorskip("keras")
    from ml_debugger.integrations.keras import MLDebuggerCallback
    from tests.training.detection.keras_models import TinyKerasHubDetector

    rng = np.random.default_rng(0)
    x = rng.random((5, 32, 32, 3)).astype("float32")
    per_image = [{"boxes": [[2.0, 3.0, 12.0, 20.0]], "labels": [i % 3]} for i in range(5)]

    class Batches(keras.utils.PyDataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int):
            return x[3 * i: 3 * i + 3], per_image[3 * i: 3 * i + 3]

    padded = {"boxes": np.array([[[2, 3, 10, 17], [-1, -1, -1, -1]]] * 5, "float32"),  # xywh, the model's format
              "labels": np.array([[1, -1]] * 5)}
    model = TinyKerasHubDetector("xywh")
    model.build((None, 32, 32, 3))
    callback = MLDebuggerCallback("keras-det", "v1", validation_data=Batches(), store=store, strict=True,
                                  train_data=(x, padded), trace_train_every_n_epochs=1, score_thresh=0.3)
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_end(0)
    callback.on_train_end()

    assert store.model_task("keras-det") == "detection2d"
    rows = store.read_traces("keras-det", "v1", None).to_pandas()
    val, train = rows[rows["dataset_type"] == "val"], rows[rows["dataset_type"] == "train"]
    assert val["input_id"].tolist() == train["input_id"].tolist() == [str(i) for i in range(5)]
    assert [list(v) for v in val["gt_labels"]] == [[i % 3] for i in range(5)]
    for cell in train["gt_boxes"]:
        np.testing.assert_allclose(np.stack(cell), [[2, 3, 12, 20]])  # padded xywh -> xyxy, pads dropped
    assert rows["score_thresh"].tolist() == pytest.approx([0.3] * 10)  # stricter than the decoder's 0.2: applied
    scores = np.concatenate([np.asarray(s, np.float64) for s in rows["pred_scores"]])
    assert len(scores) > 0 and scores.min() > 0.3
