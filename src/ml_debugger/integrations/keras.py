"""Keras 3: ``model.fit(..., callbacks=[MLDebuggerCallback("my-model", "v1", validation_data=(x, y))])``.

At the end of each traced epoch the callback runs the validation data once through a sub-model
that outputs both the predictions and a chosen layer's features, and records them with labels
and ids. Works on every Keras backend (torch needs no TensorFlow); tf.data needs TensorFlow.
A KerasCV / KerasHub-style detector (or ``task="detection2d"`` with ``output_mapping``) is traced as a
2-D detector: the same pass goes through its detection tracer, which decodes the raw head outputs
with the model's own ``decode_predictions``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from ml_debugger.core import TraceSession
from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.integrations._common import (
    RowTag,
    TracingGuard,
    check_every_n,
    check_names,
    image_previews,
    is_due,
    open_session,
    record_rows,
)
from ml_debugger.integrations._detection import (
    DETECTION,
    DetectionOptions,
    check_task,
    count_targets,
    is_padded,
    padded_targets,
    slice_targets,
    task_of,
)
from ml_debugger.names import validate_name
from ml_debugger.store import TraceStore

logger = logging.getLogger(__name__)

Batch = tuple[Any, np.ndarray, np.ndarray]


def iter_batches(data: Any, batch_size: int) -> Iterator[Batch]:
    """``(x, labels, ids)`` batches of ``(x, y)`` / ``(x, y, ids)`` arrays, a PyDataset or a tf.data
    dataset (ids are positions when the data carries none; a third item of a PyDataset or tf.data
    batch is a sample weight and ignored)."""
    if isinstance(data, tuple) and len(data) in (2, 3):
        x, y = data[0], np.asarray(data[1])
        ids = np.asarray(data[2]) if len(data) == 3 else np.arange(len(y))
        for start in range(0, len(y), batch_size):
            part = slice(start, start + batch_size)
            yield keras.tree.map_structure(lambda a, part=part: a[part], x), y[part], ids[part]
        return
    position = 0
    for x, y in _stream(data):
        y = np.asarray(y)
        yield x, y, np.arange(position, position + len(y))
        position += len(y)


def iter_detection_batches(data: Any, batch_size: int) -> Iterator[tuple[Any, Any, np.ndarray]]:
    """``(images, targets, ids)`` batches of ``(images, targets)`` / ``(images, targets, ids)``, a
    PyDataset or a tf.data dataset; targets as a list of per-image dicts, a dict of per-image lists
    or a KerasCV / KerasHub padded dict (ids are positions when the data carries none)."""
    if isinstance(data, tuple) and len(data) in (2, 3):
        x, targets = data[0], data[1]
        count = count_targets(targets)
        ids = np.asarray(data[2]) if len(data) == 3 else np.arange(count)
        for start in range(0, count, batch_size):
            part = slice(start, start + batch_size)
            yield keras.tree.map_structure(lambda a, part=part: a[part], x), slice_targets(targets, part), ids[part]
        return
    position = 0
    for x, targets in _stream(data):
        count = count_targets(targets)
        yield x, targets, np.arange(position, position + count)
        position += count


def _stream(data: Any) -> Iterator[tuple[Any, Any]]:
    """The ``(x, y)`` batches of a PyDataset or tf.data dataset (a third item, a sample weight, dropped)."""
    if isinstance(data, keras.utils.PyDataset):
        batches = (data[i] for i in range(data.num_batches))
    elif hasattr(data, "as_numpy_iterator"):  # tf.data.Dataset, only where TensorFlow is installed
        batches = data.as_numpy_iterator()
    else:
        raise ConfigurationError(
            f"validation_data must be an (x, y) or (x, y, ids) tuple, a keras.utils.PyDataset or a tf.data "
            f"dataset; got {type(data).__name__}"
        )
    for batch in batches:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise TraceValidationError(f"a batch of validation_data must be (x, y[, sample_weight]); got {type(batch).__name__}")
        yield batch[0], batch[1]


def default_feature_tensor(model: keras.Model) -> Any:
    """The input of the model's last Dense layer (the output of the layer feeding it)."""
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ConfigurationError(f"{model.name} has no Dense layer; pass feature_layer='<layer name>'")
    return dense[-1].input


def output_score_type(model: keras.Model) -> str:
    """``"probabilities"`` when the model ends in a softmax or sigmoid, else ``"logits"``."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    squashing = (keras.activations.softmax, keras.activations.sigmoid)
    return "probabilities" if activation in squashing or isinstance(last, keras.layers.Softmax) else "logits"


class MLDebuggerCallback(keras.callbacks.Callback):
    """Records predictions, features, labels and ids of ``validation_data`` at the end of epochs.

    Args:
        model_name, version_name: names the traces are stored under (or pass ``session``).
        validation_data: ``(x, y)``, ``(x, y, ids)``, a ``keras.utils.PyDataset`` or a tf.data dataset.
        session, store, strict: the session to record into, or the store and strictness of a new
            one; ``strict=True`` also raises tracing failures instead of warning once.
        feature_layer: name of the layer whose output is recorded as features (default: the input
            of the last Dense layer); ``record_features=False`` records none.
        score_type: ``"logits"`` or ``"probabilities"``; by default read from the last layer.
        batch_size: batch size of the tracing pass over arrays.
        dataset_type: the dataset_type of ``validation_data`` rows.
        every_n_epochs: trace every n-th epoch (``(epoch + 1) % n == 0``).
        train_data, trace_train_every_n_epochs: also trace ``train_data`` (same formats) as
            dataset_type ``"train"`` every n-th epoch, so coverage signals have a reference.
        previews: store a small JPEG of each image input for the dashboard (off by default).
        task: ``"classification"``, ``"detection2d"`` or None: detection for a KerasCV / KerasHub-style
            detector (a ``bounding_box_format`` and a prediction decoder).
        score_thresh, iou_thresh, max_detections_per_image, output_mapping, label_names,
            num_classes: detection options, as `ObjectDetectionTracer` takes them.

    For detection, ``validation_data`` is ``(images, targets)`` or ``(images, targets, ids)`` (or a
    PyDataset / tf.data dataset of ``(images, targets)`` batches) with targets as a list of
    per-image ``{"boxes": xyxy pixels, "labels"}``, a dict of per-image lists, or KerasCV /
    KerasHub's padded ``{"boxes": (n, max, 4) in the model's bounding_box_format, "labels"}``
    (-1 pads).
    """

    def __init__(
        self,
        model_name: str | None = None,
        version_name: str | None = None,
        validation_data: Any = None,
        *,
        session: TraceSession | None = None,
        store: TraceStore | None = None,
        strict: bool = False,
        feature_layer: str | None = None,
        record_features: bool = True,
        score_type: str | None = None,
        batch_size: int = 256,
        dataset_type: str = "val",
        every_n_epochs: int | None = 1,
        train_data: Any = None,
        trace_train_every_n_epochs: int | None = None,
        previews: bool = False,
        task: str | None = None,
        score_thresh: float | None = None,
        iou_thresh: float | None = None,
        max_detections_per_image: int | None = None,
        output_mapping: Any = None,
        label_names: list[str] | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.task, self.previews = check_task(task), previews
        self._detection = DetectionOptions(
            score_thresh, iou_thresh, max_detections_per_image, output_mapping, label_names, num_classes,
            record_features, previews,
        )
        self._tracer: Any = None
        if validation_data is None:
            raise ConfigurationError("validation_data is required: (x, y), (x, y, ids), a PyDataset or a tf.data dataset")
        if trace_train_every_n_epochs and train_data is None:
            raise ConfigurationError("trace_train_every_n_epochs needs train_data")
        check_names(session, model_name, version_name)
        self._names, self._store = (model_name, version_name), store
        self._session, self._owns_session = session, session is None
        self._guard = TracingGuard("keras", strict=strict)
        self.splits = {validate_name(dataset_type, "dataset_type"): (validation_data, check_every_n(every_n_epochs, "every_n_epochs"))}
        if train_data is not None:
            self.splits["train"] = (train_data, check_every_n(trace_train_every_n_epochs, "trace_train_every_n_epochs"))
        self.feature_layer, self.record_features = feature_layer, record_features
        self.score_type, self.batch_size = score_type, batch_size
        self._probe: keras.Model | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        with self._guard("starting the trace session"):
            task = task_of(self.model, self.task)
            if self._session is None:
                self._session = open_session(*self._names, store=self._store, strict=self._guard.strict, task=task)
            elif self._session.task != task:
                raise ConfigurationError(f"the session is of task {self._session.task!r} but the model is traced as {task!r}")
            stale = self._tracer is None or self._tracer.model is not self.model or self._tracer.session is not self._session
            if task == DETECTION and stale:
                self._tracer = self._detection.tracer(self.model, self._session)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        due = [(name, data) for name, (data, every) in self.splits.items() if is_due(epoch, every)]
        if self._session is None or not due:
            return
        with self._guard(f"tracing epoch {epoch}"):
            step = self._global_step()
            for name, data in due:
                self._trace(data, RowTag(name, epoch, step))
            self._session.commit()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._owns_session and self._session is not None:
            with self._guard("closing the trace session"):
                self._session.close()
            self._session = None

    def _trace(self, data: Any, tag: RowTag) -> None:
        if self._tracer is not None:
            self._trace_detections(data, tag)
            return
        probe = self._probe_model()
        score_type = self.score_type or output_score_type(self.model)
        for x, labels, ids in iter_batches(data, self.batch_size):
            outputs = probe.predict_on_batch(x)
            scores, features = (outputs[0], outputs[1]) if self.record_features else (outputs, None)
            inputs = [np.asarray(keras.ops.convert_to_numpy(a)) for a in keras.tree.flatten(x)]
            record_rows(
                self._session, tag, scores=np.asarray(scores), labels=labels, inputs=inputs, ids=ids,
                features=None if features is None else np.asarray(features), score_type=score_type,
                previews=image_previews(inputs[0], self.previews),
            )

    def _trace_detections(self, data: Any, tag: RowTag) -> None:
        """One pass of ``data`` through the detection tracer (``model(images, training=False)``, decoded)."""
        box_format = getattr(self.model, "bounding_box_format", None)
        for x, targets, ids in iter_detection_batches(data, self.batch_size):
            if is_padded(targets):
                if not isinstance(box_format, str):
                    raise ConfigurationError("padded targets need the model's bounding_box_format; pass per-image dicts")
                images = np.asarray(keras.ops.convert_to_numpy(x))
                channels_last = keras.config.image_data_format() == "channels_last"
                height, width = images.shape[1:3] if channels_last else images.shape[2:4]
                sizes = np.tile([width, height], (len(images), 1))
                targets = padded_targets(targets, box_format, sizes)
            self._tracer(x, targets, input_ids=ids, dataset_type=tag.dataset_type, n_epoch=tag.epoch,
                         global_step=tag.global_step)

    def _probe_model(self) -> keras.Model:
        """A sub-model sharing the model's weights that outputs the predictions (and features)."""
        if self._probe is None:
            model = self.model
            if not model.inputs:
                raise ConfigurationError(
                    f"{type(model).__name__} has no symbolic inputs (a subclassed model); build it with keras.Input "
                    "or use a Sequential/functional model"
                )
            inputs = model.inputs if len(model.inputs) > 1 else model.inputs[0]
            outputs = model.outputs[0]
            if self.record_features:
                layer = model.get_layer(self.feature_layer) if self.feature_layer else None
                outputs = [outputs, layer.output if layer is not None else default_feature_tensor(model)]
            self._probe = keras.Model(inputs, outputs)
        return self._probe

    def _global_step(self) -> int | None:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return None
        value = optimizer.iterations.value  # a backend tensor; .item() avoids keras' numpy-2 copy warning on torch
        return int(value.item() if hasattr(value, "item") else keras.ops.convert_to_numpy(value))
