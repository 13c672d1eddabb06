"""ObjectDetectionTracer: find the framework and family of a detector, return its tracer.

Recognition looks at the model's classes and attributes only, so it imports a framework's
adapter (and the framework) only when the model already is one of its objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ml_debugger.core import TraceSession
from ml_debugger.exceptions import ConfigurationError
from ml_debugger.store import TraceStore
from ml_debugger.training.detection._base import DetectionTracer, PredictionsTracer
from ml_debugger.training.detection._mapping import (
    MAPPING_HELP,
    MappedOutputTracer,
    supported_families,
)

KERAS_ROOTS = {"keras", "tf_keras", "keras_cv", "keras_hub"}


def _roots(model: Any) -> set[str]:
    return {cls.__module__.split(".")[0] for cls in type(model).__mro__}


def framework_of(model: Any) -> str | None:
    """``"keras"``, ``"torch"``, ``"tensorflow"`` or None, from the modules of the model's classes
    (Keras first: on the torch backend a Keras model is also a ``torch.nn.Module``)."""
    roots = _roots(model)
    if roots & KERAS_ROOTS:
        return "keras"
    if "torch" in roots:
        return "torch"
    if "tensorflow" in roots and callable(model):
        return "tensorflow"
    return None


def _unrecognised(model: Any, found: str) -> ConfigurationError:
    return ConfigurationError(
        f"ObjectDetectionTracer does not recognise {found} "
        f"({type(model).__module__}.{type(model).__qualname__}). Supported families: {supported_families()}. "
        f"For any other model {MAPPING_HELP}"
    )


def _torch_family(model: Any) -> type[DetectionTracer] | None:
    roots = _roots(model)
    if "ultralytics" in roots:
        from ml_debugger.training.detection._ultralytics import UltralyticsYOLOTracer

        return UltralyticsYOLOTracer
    if any(cls.__module__.startswith("torchvision.models.detection") for cls in type(model).__mro__):
        from ml_debugger.training.detection._torchvision import torchvision_tracer_class

        tracer = torchvision_tracer_class(model)
        if tracer is not None:
            return tracer
    from ml_debugger.training.detection._centernet import CenterNetTracer, is_centernet
    from ml_debugger.training.detection._detr import fb_detr_class, is_fb_detr
    from ml_debugger.training.detection._detr_hf import hf_detr_class

    if "transformers" in roots:
        return hf_detr_class(model)
    if is_fb_detr(model):
        return fb_detr_class(model)
    if is_centernet(model):
        return CenterNetTracer
    return None


def detector_class(model: Any) -> type[DetectionTracer] | None:
    """The tracer class of a detector of a recognised family, or None (no detector built, nothing
    run). Unlike `ObjectDetectionTracer`, this has no catch-all: a torch module of no known family
    (which the factory reads as torchvision-format) or a plain TensorFlow callable gives None."""
    framework = framework_of(model)
    if framework == "keras":
        from ml_debugger.training.detection._keras import KerasCVTracer, is_kerascv

        return KerasCVTracer if is_kerascv(model) else None
    if framework == "torch":
        return _torch_family(model)
    return None


def _torch_tracer(model: Any) -> type[DetectionTracer]:
    tracer = _torch_family(model)
    if tracer is not None:
        return tracer
    if "transformers" in _roots(model):
        raise _unrecognised(model, "this Hugging Face model")
    from ml_debugger.training.detection._torchvision import TorchvisionStyleTracer

    return TorchvisionStyleTracer


def ObjectDetectionTracer(
    model: Any,
    model_name: str | None = None,
    version_name: str | None = None,
    score_thresh: float | None = None,
    iou_thresh: float | None = None,
    max_detections_per_image: int | None = None,
    *,
    output_mapping: Mapping[str, Any] | Callable[[Any, Any], Sequence[Mapping[str, Any]]] | None = None,
    record_features: bool = True,
    previews: bool = False,
    label_names: Sequence[str] | None = None,
    num_classes: int | None = None,
    strict: bool = False,
    store: TraceStore | None = None,
    session: TraceSession | None = None,
) -> DetectionTracer:
    """The tracer of a 2-D object detector: finds the framework and family, returns its tracer.

    Usage (as in the reference SDK)::

        tracer = ObjectDetectionTracer(model, model_name="faster_rcnn", version_name="v1")
        for images, targets, image_ids in loader:
            _ = tracer(images, targets, input_ids=image_ids, dataset_type="val")
        tracer.wait_for_save()

    Args:
        model: a torch or TensorFlow / Keras detector of a supported family, any model with
            ``output_mapping``, or None to record predictions made elsewhere with ``record()``.
        model_name, version_name: names the traces are stored under.
        score_thresh, iou_thresh, max_detections_per_image: the thresholds; by default read from
            the model, else the family's defaults, else 0.05 / 0.5 / 300. The DETR family and
            CenterNet ignore ``iou_thresh`` (no NMS). The tracer never changes the model: see
            docs/detection-tracing.md for what each family does with them.
        output_mapping: how to read the output of a model no family covers: a dict naming the
            output's ``boxes``, ``scores``, ``labels`` (and optionally ``num_detections`` and a
            ``box_format``), or a callable ``(output, inputs) -> per-image dicts``.
        record_features: set False to record no per-object or image features.
        previews: store a small JPEG of each image for the dashboard (at most 128 px; about
            2-5 KB per image; needs Pillow).
        label_names: class names by id (read from Hugging Face / Ultralytics models otherwise).
        num_classes: the number of class ids, to check ground-truth labels against (read from
            the model where it has one).
        strict: raise instead of warning on non-finite model outputs.
        store: a store to write to; by default the one the environment selects (``MLD_HOME``).
        session: a ready detection2d :class:`TraceSession` to record into instead of opening one
            (then the names, ``store`` and ``strict`` are the session's).

    Raises:
        ConfigurationError: the model is of no supported family and no ``output_mapping`` is
            given (the message lists the families), or an argument is invalid.
    """
    options: dict[str, Any] = {
        "record_features": record_features, "previews": previews, "label_names": label_names, "num_classes": num_classes,
        "strict": strict, "store": store, "session": session,
    }
    thresholds = (score_thresh, iou_thresh, max_detections_per_image)
    if model is None:
        return PredictionsTracer(None, model_name, version_name, *thresholds, **options)
    framework = framework_of(model)
    if output_mapping is not None:
        if framework is None and not callable(model):
            raise _unrecognised(model, "an object that is not a model")
        return MappedOutputTracer(
            model, model_name, version_name, *thresholds, output_mapping=output_mapping,
            channels_last=framework != "torch" and _keras_channels_last(framework), **options,
        )
    if framework == "keras":
        from ml_debugger.training.detection._keras import KerasCVTracer, is_kerascv

        if not is_kerascv(model):
            raise _unrecognised(model, "this Keras model (no bounding_box_format / prediction decoder)")
        return KerasCVTracer(model, model_name, version_name, *thresholds, **options)
    if framework == "tensorflow":
        from ml_debugger.training.detection._keras import TFObjectDetectionAPITracer

        return TFObjectDetectionAPITracer(model, model_name, version_name, *thresholds, **options)
    if framework == "torch":
        return _torch_tracer(model)(model, model_name, version_name, *thresholds, **options)
    raise _unrecognised(model, "this object")


def _keras_channels_last(framework: str | None) -> bool:
    if framework != "keras":
        return True
    import keras

    return keras.config.image_data_format() == "channels_last"
