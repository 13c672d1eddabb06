"""Run by test_keras.py in a fresh process with KERAS_BACKEND=tensorflow: traces the TensorFlow
families and checks what was recorded; prints whether torch was ever imported."""

from __future__ import annotations

import sys
import tempfile

import numpy as np
import tensorflow as tf
from keras_models import TinyKerasHubDetector, custom_model

from ml_debugger.store import LocalStore, open_store
from ml_debugger.tasks import get_task
from ml_debugger.training import ObjectDetectionTracer

GT = [{"boxes": [[4.0, 6.0, 30.0, 40.0]], "labels": [1]}, {"boxes": np.zeros((0, 4)), "labels": []}]


def rows(name: str):
    store = open_store()
    assert isinstance(store, LocalStore)
    table = store.read_traces(name, "v1", None)
    get_task("detection2d").schema.check(table)
    return table.to_pandas()


class ObjectDetectionAPIModel(tf.Module):
    """The serving signature of a TF Object Detection API export: normalised yxyx boxes, 1-based
    float classes, per-image detection counts, padded to 4 detections."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    def __call__(self, images):
        batch = tf.shape(images)[0]
        boxes = tf.constant([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.4, 0.4], [0, 0, 0, 0]])
        return {
            "detection_boxes": tf.tile(boxes[None], [batch, 1, 1]),
            "detection_scores": tf.tile(tf.constant([[0.9, 0.6, 0.01, 0.0]]), [batch, 1]),
            "detection_classes": tf.tile(tf.constant([[1.0, 3.0, 2.0, 0.0]]), [batch, 1]),
            "num_detections": tf.fill([batch], 3.0),
        }


def main() -> None:
    images = np.random.default_rng(0).random((2, 64, 96, 3)).astype("float32")

    # KerasCV / KerasHub style on the TensorFlow backend
    tracer = ObjectDetectionTracer(TinyKerasHubDetector("rel_yxyx"), "kerashub", "v1")
    assert type(tracer).__name__ == "KerasCVTracer", type(tracer).__name__
    tracer(tf.constant(images), GT, input_ids=["a", "b"], dataset_type="val")
    tracer.wait_for_save()
    kerashub = rows("kerashub")
    assert [len(b) for b in kerashub["pred_boxes"]] == [5, 5], kerashub["pred_boxes"]
    assert kerashub["image_width"].tolist() == [96, 96] and kerashub["max_detections"].tolist() == [5, 5]

    # TF Object Detection API: a SavedModel loaded back as the API's users load it
    with tempfile.TemporaryDirectory() as directory:
        tf.saved_model.save(ObjectDetectionAPIModel(), directory)
        detect_fn = tf.saved_model.load(directory)
        tracer = ObjectDetectionTracer(detect_fn, "odapi", "v1")
        assert type(tracer).__name__ == "TFObjectDetectionAPITracer", type(tracer).__name__
        assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_image) == (0.05, 0.5, 300)
        uint8 = (images * 255).astype(np.uint8)
        output = tracer(tf.constant(uint8), GT, dataset_type="val")
        assert set(output) == {"detection_boxes", "detection_scores", "detection_classes", "num_detections"}
    tracer.wait_for_save()
    odapi = rows("odapi")
    # yxyx [0.1, 0.2, 0.5, 0.6] of a 96 x 64 image; [0, 0, 1, 1] overlaps it less than 0.5; the
    # 0.01 detection is under the 0.05 used, the padded fourth is past num_detections
    np.testing.assert_allclose(np.stack(odapi["pred_boxes"][0]), [[19.2, 6.4, 57.6, 32.0], [0, 0, 96, 64]], rtol=1e-5)
    np.testing.assert_allclose(odapi["pred_scores"][0], [0.9, 0.6], rtol=1e-6)
    assert list(odapi["pred_labels"][0]) == [1, 3]  # the API's 1-based ids, as the model gives them

    # A custom Keras model read through output_mapping
    mapping = {"boxes": "my_boxes", "scores": "my_scores", "labels": "my_classes", "box_format": "rel_center_xywh"}
    tracer = ObjectDetectionTracer(custom_model(), "custom", "v1", output_mapping=mapping)
    assert type(tracer).__name__ == "MappedOutputTracer"
    tracer(images, GT, dataset_type="val")
    tracer.wait_for_save()
    assert len(rows("custom")) == 2
    print("torch imported:", "torch" in sys.modules)


if __name__ == "__main__":
    main()
