"""TensorFlow / Keras detectors: KerasCV and KerasHub object detectors, and TensorFlow Object
Detection API models. Nothing here imports torch (or TensorFlow: tensors are read by what they do).

- KerasCV / KerasHub (``RetinaNetObjectDetector``, ``YOLOV8Detector``, ...): the model runs as
  ``model(images, training=False)``; its raw head output is returned unchanged and decoded for the
  record with the model's own ``decode_predictions`` (its ``prediction_decoder``'s NMS and
  thresholds), boxes converted from its ``bounding_box_format``. A model whose call already returns
  ``{"boxes", "confidence" | "scores", "classes", "num_detections"}`` is read as it is.
- TF Object Detection API (a loaded SavedModel or any TF callable): ``detection_boxes``
  normalised yxyx, ``detection_scores``, ``detection_classes`` (the model's 1-based ids, kept as
  they are), ``num_detections``. Its thresholds live in its pipeline config and cannot be read: the
  values used are applied to the recorded copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks.detection2d import ImageTargets, Thresholds
from ml_debugger.training.detection._arrays import ImageBatch
from ml_debugger.training.detection._base import Adapted, DetectionTracer
from ml_debugger.training.detection._mapping import (
    MAPPING_HELP,
    OutputMapping,
    describe,
    read_image_batch,
    supported_families,
)
from ml_debugger.training.detection._thresholds import ThresholdPolicy

TF_OD_API_MAPPING = {
    "boxes": "detection_boxes", "scores": "detection_scores", "labels": "detection_classes",
    "num_detections": "num_detections", "box_format": "rel_yxyx",
}


def is_kerascv(model: Any) -> bool:
    """A KerasCV / KerasHub detector: a ``bounding_box_format`` and a prediction decoder."""
    return isinstance(getattr(model, "bounding_box_format", None), str) and (
        hasattr(model, "decode_predictions") or hasattr(model, "prediction_decoder")
    )


def _is_decoded(output: Any) -> bool:
    return isinstance(output, Mapping) and {"boxes", "classes"} <= set(output) and (
        "confidence" in output or "scores" in output
    )


class KerasCVTracer(DetectionTracer):
    """KerasCV / KerasHub object detectors (any Keras backend). No features."""

    family = "KerasCV / KerasHub"
    policy = ThresholdPolicy(
        model_applies=True,
        hint="model.prediction_decoder (confidence_threshold / iou_threshold / max_detections)",
    )

    def _model_thresholds(self) -> Thresholds:
        decoder = getattr(self.model, "prediction_decoder", None)
        max_det = getattr(decoder, "max_detections", None)
        return Thresholds(
            getattr(decoder, "confidence_threshold", None), getattr(decoder, "iou_threshold", None),
            None if max_det is None else int(max_det),
        )

    def _model_num_classes(self) -> int | None:
        classes = getattr(self.model, "num_classes", None)
        return classes if isinstance(classes, int) else None

    def _read_images(self, inputs: Any) -> ImageBatch:
        import keras

        return read_image_batch(inputs, channels_last=keras.config.image_data_format() == "channels_last")

    def _run(self, inputs: Any) -> tuple[Any, Any]:
        output = self.model(inputs, training=False)
        return output, self._observed_state(output, inputs, {})

    def _observed_state(self, output: Any, inputs: Any, captured: Mapping[str, Any]) -> Any:
        """The decoded detections: the output itself when already decoded, else ``decode_predictions``."""
        if _is_decoded(output):
            return output
        decode = getattr(self.model, "decode_predictions", None)
        if decode is None:
            raise ConfigurationError(
                f"the KerasCV / KerasHub-style model returned {type(output).__name__} and has no decode_predictions; "
                f"{MAPPING_HELP}"
            )
        return decode(output, inputs)

    def _adapt(self, output: Any, state: Any, images: ImageBatch, targets: list[ImageTargets]) -> Adapted:
        mapping = OutputMapping({
            "boxes": "boxes", "scores": "confidence" if "confidence" in state else "scores", "labels": "classes",
            **({"num_detections": "num_detections"} if "num_detections" in state else {}),
            "box_format": self.model.bounding_box_format,
        })
        return Adapted(mapping.read(state, None, images))


class TFObjectDetectionAPITracer(DetectionTracer):
    """TensorFlow Object Detection API models (``detection_*`` outputs). No features."""

    family = "TensorFlow Object Detection API"
    policy = ThresholdPolicy(model_applies=True, hint="the model's pipeline config (post_processing)")
    _mapping = OutputMapping(TF_OD_API_MAPPING)

    def _read_images(self, inputs: Any) -> ImageBatch:
        return read_image_batch(inputs, channels_last=True)

    def _run(self, inputs: Any) -> tuple[Any, Any]:
        return self.model(inputs), None

    def _adapt(self, output: Any, state: Any, images: ImageBatch, targets: list[ImageTargets]) -> Adapted:
        if not isinstance(output, Mapping) or "detection_boxes" not in output:
            raise ConfigurationError(
                f"the TensorFlow model returned {describe(output)}, not the Object Detection API's detection_boxes / "
                f"detection_scores / detection_classes. Supported families: {supported_families()}. "
                f"Otherwise {MAPPING_HELP}"
            )
        return Adapted(self._mapping.read(output, None, images))
