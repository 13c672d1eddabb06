"""The Ultralytics callbacks on a real standalone ``model.val()`` (a YOLOv8n from yaml on six
generated images): rows, the validator unwrapped afterwards, the failure policy, DDP pickling and
the ImportError naming the extra."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

CONFIG_DIR = Path(tempfile.gettempdir()) / "mld-ultralytics-tests"
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(CONFIG_DIR))
pytest.importorskip("ultralytics")

from ultralytics import YOLO

from ml_debugger.core import TraceSession
from ml_debugger.exceptions import ConfigurationError, StoreError
from ml_debugger.integrations.ultralytics import MLDebuggerCallbacks, add_mldebugger_callbacks
from ml_debugger.store import LocalStore
from tests.training.detection.conftest import read_rows


@pytest.fixture(scope="module", autouse=True)
def offline_font() -> None:
    font = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        import matplotlib
        import shutil

        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six images (two of them not square, so the letterbox pads them) with one box each."""
    from PIL import Image

    root = tmp_path_factory.mktemp("yolo-data")
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i, (w, h) in enumerate([(64, 64), (80, 48), (64, 64), (48, 72), (64, 64), (64, 64)]):
            pixels = np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "images" / split / f"{i}.png")
            (root / "labels" / split / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.5 0.4\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: a\n  1: b\n")
    return root / "data.yaml"


def _val(model: YOLO, data: Path, tmp_path: Path, **kwargs):
    return model.val(data=str(data), imgsz=64, batch=4, device="cpu", plots=False, verbose=False,
                     project=str(tmp_path), name="val", **kwargs)


class FailingStore(LocalStore):
    """A real local store whose commits fail, as a full disk would make them."""

    def commit_parts(self, parts):  # noqa: ANN001, ANN201
        raise StoreError("disk full")


def test_standalone_val_is_traced_and_the_validator_restored(data: Path, tmp_path: Path, store: LocalStore) -> None:
    model = YOLO("yolov8n.yaml")
    seen = []
    model.add_callback("on_val_end", lambda validator: seen.append(validator))
    callbacks = add_mldebugger_callbacks(model, model_name="m", version_name="v1", store=store)
    metrics = _val(model, data, tmp_path)
    rows = read_rows(store)
    assert sorted(rows["input_id"]) == [f"images/val/{i}.png" for i in range(6)]
    assert set(rows["epoch"]) == {0} and rows["final_validation"].all() and set(rows["dataset_type"]) == {"val"}
    sizes = dict(zip(rows["input_id"], zip(rows["image_width"], rows["image_height"])))
    assert sizes["images/val/1.png"] == (80, 48) and sizes["images/val/3.png"] == (48, 72)
    gt = dict(zip(rows["input_id"], rows["gt_boxes"]))
    np.testing.assert_allclose(np.stack(gt["images/val/1.png"]), [[20, 14.4, 60, 33.6]], atol=0.05)
    assert rows[["score_thresh", "iou_thresh", "max_detections"]].iloc[0].tolist() == pytest.approx([0.001, 0.7, 300])
    assert list(rows["label_names"].iloc[0]) == ["a", "b"]
    assert {len(f) for cell in rows["gt_features"] for f in cell} == {64 + 128 + 256}
    assert len(rows["pred_boxes"].iloc[0]) == len(rows["pred_features"].iloc[0])
    validator = seen[0]
    assert "update_metrics" not in vars(validator) and "init_metrics" not in vars(validator)
    assert callbacks.session is not None and metrics.box.map >= 0


def test_dataset_type_previews_and_features_off(data: Path, tmp_path: Path, store: LocalStore) -> None:
    model = YOLO("yolov8n.yaml")
    add_mldebugger_callbacks(model, "m", "v1", store=store, dataset_type="holdout", record_features=False,
                             previews=True)
    _val(model, data, tmp_path)
    rows = read_rows(store)
    assert set(rows["dataset_type"]) == {"holdout"} and "pred_features" not in rows and "image_features" not in rows
    assert rows["preview"].map(lambda jpeg: jpeg[:2] == b"\xff\xd8").all()  # a JPEG per image


def test_a_tracing_failure_warns_once_and_validation_goes_on(data: Path, tmp_path: Path, mld_home: Path) -> None:
    model = YOLO("yolov8n.yaml")
    add_mldebugger_callbacks(model, "m", "v1", store=FailingStore(mld_home))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = _val(model, data, tmp_path)
        _val(model, data, tmp_path)
    ours = [w for w in caught if "ml-debugger (ultralytics)" in str(w.message)]
    assert len(ours) == 1 and "disk full" in str(ours[0].message)
    assert metrics.box.map >= 0


def test_strict_raises_the_failure(data: Path, tmp_path: Path, mld_home: Path) -> None:
    model = YOLO("yolov8n.yaml")
    add_mldebugger_callbacks(model, "m", "v1", store=FailingStore(mld_home), strict=True)
    with pytest.raises(StoreError, match="disk full"):
        _val(model, data, tmp_path)


def test_a_classification_validator_is_refused_clearly(tmp_path: Path, store: LocalStore) -> None:
    from ultralytics.models.yolo.classify import ClassificationValidator

    callbacks = MLDebuggerCallbacks("m", "v1", store=store, strict=True)
    validator = ClassificationValidator(args={"project": str(tmp_path), "name": "cls"})
    with pytest.raises(ConfigurationError, match="ClassificationValidator is not traced"):
        callbacks.on_val_start(validator)


def test_names_are_checked_when_attached() -> None:
    with pytest.raises(ConfigurationError, match="model_name"):
        add_mldebugger_callbacks(YOLO("yolov8n.yaml"), "bad/name", "v1")


def test_callbacks_pickle_without_their_session(store: LocalStore) -> None:
    """Ultralytics cloudpickles the callbacks into each DDP worker; each opens its own session there."""
    session = TraceSession("m", "v1", "detection2d", store=store)
    callbacks = MLDebuggerCallbacks(session=session)
    copy = pickle.loads(pickle.dumps(callbacks))
    assert copy.session is None and copy._names == ("m", "v1")
    session.close()


def test_a_missing_ultralytics_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['ultralytics'] = None\n"
        "try:\n    import ml_debugger.integrations.ultralytics\n"
        "except ImportError as error:\n    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'ml-debugger[ultralytics]'" in out.stdout


def test_which_validations_are_traced() -> None:
    from types import SimpleNamespace

    from ml_debugger.integrations.ultralytics import validation_tag

    callbacks = MLDebuggerCallbacks("m", "v1", every_n_epochs=2, trace_final_validation=False)
    trainer = SimpleNamespace(epoch=0, train_loader=range(3), validator=SimpleNamespace(training=True))
    callbacks.on_train_start(trainer)

    def traced(validator) -> bool:
        return callbacks._is_traced(validator, validation_tag(validator, trainer, "val", None))

    assert not traced(trainer.validator)
    trainer.epoch = 1
    assert traced(trainer.validator)
    trainer.validator.training = False  # the final validation of best.pt
    assert not traced(trainer.validator)
    assert traced(SimpleNamespace(training=False))  # a standalone model.val()
    with pytest.raises(ConfigurationError, match="every_n_epochs"):
        MLDebuggerCallbacks("m", "v1", every_n_epochs=-1)
