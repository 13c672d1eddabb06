"""Tiny Keras detectors with the output formats the tracer reads, on whatever Keras backend the
process chose (set KERAS_BACKEND before importing this module)."""

from __future__ import annotations

import keras
from keras import layers, ops

ANCHORS = 12


class Decoder(layers.Layer):
    """Stands in for KerasCV / KerasHub's NonMaxSuppression decoder: the same attributes, and the
    same padded output (invalid detections are -1); keeps the best ``max_detections`` above
    ``confidence_threshold`` (a tiny model needs no suppression to test the reading)."""

    def __init__(self, confidence_threshold: float = 0.2, iou_threshold: float = 0.6, max_detections: int = 5) -> None:
        super().__init__()
        self.confidence_threshold = confidence_threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections

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


class TinyKerasHubDetector(keras.Model):
    """KerasHub's ImageObjectDetector contract: ``model(images)`` returns the raw head outputs,
    ``decode_predictions(outputs, images)`` decodes them in ``bounding_box_format``."""

    def __init__(self, bounding_box_format: str = "xywh", num_classes: int = 3) -> None:
        super().__init__()
        self.bounding_box_format = bounding_box_format
        self.num_classes = num_classes
        self.features = keras.Sequential(
            [layers.Conv2D(8, 3, strides=4, activation="relu"), layers.GlobalAveragePooling2D()]
        )
        self.box_head = layers.Dense(ANCHORS * 4)
        self.cls_head = layers.Dense(ANCHORS * num_classes)
        self.prediction_decoder = Decoder()

    def build(self, input_shape) -> None:
        self.features.build(input_shape)
        feature_shape = self.features.compute_output_shape(input_shape)
        self.box_head.build(feature_shape)
        self.cls_head.build(feature_shape)

    def call(self, images):
        features = self.features(images)
        return {
            "bbox_regression": ops.reshape(self.box_head(features), (-1, ANCHORS, 4)),
            "cls_logits": ops.reshape(self.cls_head(features), (-1, ANCHORS, self.num_classes)),
        }

    def decode_predictions(self, predictions, images):
        height = ops.cast(ops.shape(images)[1], "float32")
        width = ops.cast(ops.shape(images)[2], "float32")
        unit = ops.sigmoid(predictions["bbox_regression"]) * 0.5
        x1, y1 = unit[..., 0], unit[..., 1]  # relative to the image
        x2, y2 = x1 + unit[..., 2], y1 + unit[..., 3]
        parts = {
            "xyxy": [x1 * width, y1 * height, x2 * width, y2 * height],
            "xywh": [x1 * width, y1 * height, (x2 - x1) * width, (y2 - y1) * height],
            "rel_yxyx": [y1, x1, y2, x2],
        }[self.bounding_box_format]
        return self.prediction_decoder(ops.stack(parts, axis=-1), ops.sigmoid(predictions["cls_logits"]))


def custom_model() -> keras.Model:
    """A functional model with its own output names (needs output_mapping)."""
    images = keras.Input((None, None, 3))
    features = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3, activation="relu")(images))
    boxes = layers.Reshape((ANCHORS, 4))(layers.Dense(ANCHORS * 4, activation="sigmoid")(features))
    scores = layers.Dense(ANCHORS, activation="sigmoid")(features)
    classes = ops.argmax(layers.Reshape((ANCHORS, 3))(layers.Dense(ANCHORS * 3)(features)), axis=-1)
    return keras.Model(images, {"my_boxes": boxes, "my_scores": scores, "my_classes": classes})
