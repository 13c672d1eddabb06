"""Train a tiny KerasHub-style object detector on drawn shapes with ``model.fit``, traced by ml-debugger.

Keras 3 on any backend (torch needs no TensorFlow):
``KERAS_BACKEND=torch python integrations/keras/keras_detector_shapes.py``. Then evaluate:

    from ml_debugger.evaluator import Evaluator
    Evaluator("shapes-keras-detector", "keras-v1").request_evaluation(n_epoch=None).metrics_summary()

The detector follows KerasHub's ``ImageObjectDetector`` contract (keras-hub itself is not needed):
``model(images)`` returns raw head outputs, ``model.decode_predictions(outputs, images)`` decodes them
with its ``prediction_decoder`` into padded ``boxes`` (in ``model.bounding_box_format``),
``confidence``, ``classes`` and ``num_detections``, and ``fit`` takes KerasHub's padded targets
``{"boxes": (n, max_boxes, 4), "labels": (n, max_boxes)}`` with -1 pads. The only ml-debugger line
is the callback passed to ``fit``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from keras import layers, ops

from ml_debugger.integrations.keras import MLDebuggerCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # integrations/shapes.py draws the images
from shapes import NAMES, draw_shapes  # noqa: E402

SIDE, SLOTS = 64, 3  # at most three shapes per image: one prediction slot each
CLASSES = NAMES[1:]  # KerasHub's class ids start at 0: square, disc, cross


class Decoder(layers.Layer):
    """The part of KerasHub's NonMaxSuppression decoder a slot detector needs: its attributes and
    its padded output (the best ``max_detections`` above ``confidence_threshold``, -1 after)."""

    def __init__(self, confidence_threshold: float = 0.05, iou_threshold: float = 0.5, max_detections: int = SLOTS):
        super().__init__()
        self.confidence_threshold, self.iou_threshold, self.max_detections = (
            confidence_threshold, iou_threshold, max_detections)

    def call(self, boxes, scores):
        confidence = ops.max(scores, axis=-1)
        order = ops.flip(ops.argsort(confidence, axis=-1), axis=-1)[:, : self.max_detections]
        confidence = ops.take_along_axis(confidence, order, axis=1)
        classes = ops.take_along_axis(ops.argmax(scores, axis=-1), order, axis=1)
        boxes = ops.take_along_axis(boxes, ops.expand_dims(order, -1), axis=1)
        valid = confidence > self.confidence_threshold
        return {
            "boxes": ops.where(ops.expand_dims(valid, -1), boxes, -1.0),
            "confidence": ops.where(valid, confidence, -1.0),
            "classes": ops.where(valid, classes, -1),
            "num_detections": ops.sum(ops.cast(valid, "int32"), axis=-1),
        }


def unit_boxes(regression):
    """xyxy boxes relative to the image from the box head's output: a centre and a size up to half the image."""
    centre, size = ops.sigmoid(regression[..., :2]), ops.sigmoid(regression[..., 2:]) * 0.5
    return ops.concatenate([centre - size / 2, centre + size / 2], axis=-1)


class SlotDetector(keras.Model):
    """A small conv net predicting ``SLOTS`` boxes (slot k: the k-th shape from the left) and class
    scores; the loss is L1 on boxes and binary cross-entropy on classes (empty slots: all zero)."""

    def __init__(self, num_classes: int = len(CLASSES), bounding_box_format: str = "xyxy") -> None:
        super().__init__()
        self.num_classes, self.bounding_box_format = num_classes, bounding_box_format
        self.backbone = keras.Sequential([
            layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
            layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(64, activation="relu"),
        ])
        self.box_head = layers.Dense(SLOTS * 4)
        self.cls_head = layers.Dense(SLOTS * num_classes)
        self.prediction_decoder = Decoder()

    def build(self, input_shape) -> None:
        self.backbone.build(input_shape)
        features = self.backbone.compute_output_shape(input_shape)
        self.box_head.build(features)
        self.cls_head.build(features)

    def call(self, images):
        features = self.backbone(images)
        return {
            "bbox_regression": ops.reshape(self.box_head(features), (-1, SLOTS, 4)),
            "cls_logits": ops.reshape(self.cls_head(features), (-1, SLOTS, self.num_classes)),
        }

    def decode_predictions(self, predictions, images):
        boxes = unit_boxes(predictions["bbox_regression"]) * SIDE  # xyxy pixels
        return self.prediction_decoder(boxes, ops.sigmoid(predictions["cls_logits"]))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        real = ops.cast(y["labels"] >= 0, "float32")
        boxes = unit_boxes(y_pred["bbox_regression"])
        box_loss = ops.sum(ops.abs(boxes - y["boxes"] / SIDE) * real[..., None]) / ops.maximum(ops.sum(real), 1.0)
        onehot = ops.one_hot(ops.maximum(y["labels"], 0), self.num_classes) * real[..., None]
        cls_loss = ops.mean(ops.binary_crossentropy(onehot, y_pred["cls_logits"], from_logits=True))
        return 5.0 * box_loss + cls_loss


def shapes_data(n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Images ``(n, SIDE, SIDE, 3)`` and KerasHub's padded targets, shapes sorted left to right."""
    images, boxes, labels = [], np.full((n, SLOTS, 4), -1.0, np.float32), np.full((n, SLOTS), -1, np.int32)
    for i, (image, image_boxes, image_labels) in enumerate(draw_shapes(n, SIDE, seed)):
        order = np.argsort(image_boxes[:, 0], kind="stable")
        images.append(image.transpose(1, 2, 0))
        boxes[i, : len(order)] = image_boxes[order]
        labels[i, : len(order)] = image_labels[order] - 1
    return np.stack(images), {"boxes": boxes, "labels": labels}


def main(epochs: int = 2, n_train: int = 128, n_val: int = 32, model_name: str = "shapes-keras-detector",
         version_name: str = "keras-v1") -> keras.Model:
    keras.utils.set_random_seed(0)
    x_train, y_train = shapes_data(n_train, seed=0)
    x_val, y_val = shapes_data(n_val, seed=1)
    model = SlotDetector()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(
        x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, batch_size=16, verbose=0,
        callbacks=[MLDebuggerCallback(model_name, version_name, validation_data=(x_val, y_val),
                                      label_names=CLASSES)],  # <- the one line ml-debugger needs
    )
    return model


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    main(parser.parse_args().epochs)
