"""Hugging Face Trainer: ``Trainer(..., callbacks=[MLDebuggerCallback("my-model", "v1")])``.

Forward hooks on the model (active only while it runs in eval mode) keep each evaluation batch's
logits, the classifier's input as features, the labels and input hashes; ``on_evaluate`` records
them with ids (positions in the sequential eval sampler, or ``id_column``) and commits the epoch.
Neither the model nor the collator changes. A DETR-family detector (DETR, Conditional / Deformable
DETR, RT-DETR / RT-DETRv2, D-FINE, YOLOS; or ``task="detection2d"``) is traced as a 2-D detector:
each eval-mode forward's logits and boxes are read as the image processor's
``post_process_object_detection`` reads them, with the ground truth and original image sizes of
the ``labels`` the Trainer passes to the model.
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler
from transformers import (
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from ml_debugger.core import TraceSession, hash_samples
from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.integrations._common import (
    RowTag,
    TracingGuard,
    check_every_n,
    check_names,
    image_previews,
    is_due,
    open_session,
    record_batch,
    record_rows,
)
from ml_debugger.integrations._detection import (
    DETECTION,
    DetectionOptions,
    check_task,
    hf_detection_targets,
    task_of,
)
from ml_debugger.integrations._detection_torch import DetectorWatch
from ml_debugger.tasks.detection2d import DetectionBatch
from ml_debugger.store import TraceStore
from ml_debugger.training._hooks import ForwardCapture
from ml_debugger.training._torch import to_numpy

logger = logging.getLogger(__name__)

LABEL_COLUMNS = ("labels", "label", "label_ids")


def epoch_index(state_epoch: float | None) -> int:
    """The 0-based epoch an evaluation belongs to: ``ceil(state.epoch) - 1`` (state.epoch counts
    finished epochs as a float, so 1.0 is the end of the first and 1.5 the middle of the second)."""
    if not state_epoch:
        return 0
    return max(0, math.ceil(round(state_epoch, 6)) - 1)


def dataset_type_of(metrics: dict[str, Any]) -> str:
    """``val`` for ``eval_*`` metrics, ``<name>`` for ``eval_<name>_*`` (a dict of eval datasets)."""
    prefix = next((k[: -len("_runtime")] for k in metrics if k.endswith("_runtime")), "eval")
    return "val" if prefix == "eval" else prefix.removeprefix("eval_")


def column_at(dataset: Any, column: str, positions: np.ndarray) -> np.ndarray | None:
    """``dataset[position][column]`` for each position, or None when the dataset has no such column."""
    names = getattr(dataset, "column_names", None)
    if names is not None:  # datasets.Dataset: one columnar read
        return np.asarray(dataset[column])[positions] if column in names else None
    first = dataset[int(positions[0])] if len(positions) else {}
    if not hasattr(first, "keys") or column not in first:
        return None
    return np.asarray([dataset[int(i)][column] for i in positions])


def find_trainer() -> Trainer | None:
    """The Trainer running this callback. No public hook hands a callback its Trainer, so this is
    the one place that reaches for it: the caller's frames (Trainer methods call the callback
    handler with ``self``). Checked with transformers 5.x; None if not found."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, Trainer):
                return candidate
            frame = frame.f_back
        return None
    finally:
        del frame  # frames reference their locals: do not keep a cycle alive


@dataclass
class _Batch:
    scores: np.ndarray
    features: np.ndarray | None
    labels: np.ndarray | None
    hashes: np.ndarray
    previews: list[bytes] | None = None


class MLDebuggerCallback(TrainerCallback):
    """Traces every ``Trainer.evaluate`` (``eval_strategy="epoch"`` or ``"steps"``).

    Args:
        model_name, version_name: names the traces are stored under (or pass ``session``).
        session, store, strict: the session to record into, or the store and strictness of a new
            one; ``strict=True`` also raises tracing failures instead of warning once.
        id_column: a dataset column holding each sample's id; by default the position in the eval set.
            It is read from the eval dataset by position, so ``remove_unused_columns`` may drop it.
        feature_layer, record_features: the module whose output is recorded as features (default:
            the input of the classifier's final ``nn.Linear``, the pooled hidden state).
        score_type: ``"logits"`` or ``"probabilities"``.
        every_n_epochs: trace the evaluations of every n-th epoch (``(epoch + 1) % n == 0``).
        trace_train_every_n_epochs: also run the training set through the model in eval mode at
            the end of every n-th epoch (dataset_type ``"train"``).
        previews: store a small JPEG of each image input (``pixel_values``) for the dashboard.
        task: ``"classification"``, ``"detection2d"`` or None: detection for a DETR-family model.
        score_thresh, max_detections_per_image, label_names, num_classes: detection options, as
            `ObjectDetectionTracer` takes them (the DETR family has no NMS: no ``iou_thresh``).

    Epochs are ``ceil(state.epoch) - 1`` (0-based, see :func:`epoch_index`); steps are
    ``state.global_step``. Add the callback in ``Trainer(callbacks=[...])`` so its hooks are in
    place before the first evaluation. An evaluation's rows are held in memory until
    ``on_evaluate`` (only then is it known not to be a ``Trainer.predict``). Multi-process
    evaluation records input hashes as ids.
    """

    def __init__(
        self,
        model_name: str | None = None,
        version_name: str | None = None,
        *,
        session: TraceSession | None = None,
        store: TraceStore | None = None,
        strict: bool = False,
        id_column: str | None = None,
        feature_layer: str | None = None,
        record_features: bool = True,
        score_type: str = "logits",
        every_n_epochs: int | None = 1,
        trace_train_every_n_epochs: int | None = None,
        previews: bool = False,
        task: str | None = None,
        score_thresh: float | None = None,
        max_detections_per_image: int | None = None,
        label_names: list[str] | None = None,
        num_classes: int | None = None,
    ) -> None:
        check_names(session, model_name, version_name)
        self.task, self.previews = check_task(task), previews
        self._detection = DetectionOptions(
            score_thresh=score_thresh, max_detections_per_image=max_detections_per_image, label_names=label_names,
            num_classes=num_classes, record_features=record_features, previews=previews,
        )
        self._model: torch.nn.Module | None = None
        self._watch: DetectorWatch | None = None
        self._seen = 0
        self._names, self._store = (model_name, version_name), store
        self._session = session
        self._guard = TracingGuard("transformers", strict=strict)
        self.id_column, self.score_type = id_column, score_type
        self._capture_options = {"logits_module": "", "feature_layer": feature_layer, "record_features": record_features}
        self.every_n_epochs = check_every_n(every_n_epochs, "every_n_epochs")
        self.trace_train_every_n_epochs = check_every_n(trace_train_every_n_epochs, "trace_train_every_n_epochs")
        self._capture: ForwardCapture | None = None
        self._pre_hook: torch.utils.hooks.RemovableHandle | None = None
        self._label_names: list[str] = ["labels"]
        self._pending: tuple[np.ndarray, np.ndarray | None, list[bytes] | None] | None = None
        self._batches: list[_Batch | DetectionBatch | None] = []
        self._eval_dataset: Any = None
        self._world_size = 1

    def on_init_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._setup(args, kwargs.get("model"))

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._setup(args, kwargs.get("model"))

    def on_prediction_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self._model is None:
            return
        self._eval_dataset = getattr(kwargs.get("eval_dataloader"), "dataset", None)
        batch = None
        with self._guard("capturing an evaluation batch"):
            batch = self._take(self._eval_dataset)
        self._batches.append(batch)  # None marks a lost batch: positions after it are unknown

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        batches, self._batches, self._seen = self._batches, [], 0
        epoch = epoch_index(state.epoch)
        if self._session is None or not batches or not is_due(epoch, self.every_n_epochs):
            return
        with self._guard("recording the evaluation"):
            dataset_type = dataset_type_of(kwargs.get("metrics") or {})
            self._record(batches, RowTag(dataset_type, epoch, state.global_step), self._eval_dataset)
            self._session.commit()

    def on_predict(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._batches, self._seen = [], 0  # Trainer.predict is not an evaluation

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        epoch = epoch_index(state.epoch)
        if self._model is None or not is_due(epoch, self.trace_train_every_n_epochs):
            return
        with self._guard("tracing the training split"):
            dataset = self._trace_train(args, kwargs["model"], kwargs.get("train_dataloader"))
            self._record(self._batches, RowTag("train", epoch, state.global_step), dataset)
            self._session.commit()
        self._batches, self._seen = [], 0

    def close(self) -> None:
        """Remove the hooks and close the session (committed epochs stay; the rest is reported)."""
        self._remove_hooks()
        if self._session is not None:
            self._session.close()

    def _setup(self, args: TrainingArguments, model: torch.nn.Module | None) -> None:
        if model is None or self._model is model:
            return
        with self._guard("attaching the trace hooks"):
            self._world_size = args.world_size
            self._label_names = list(args.label_names or ["labels"])
            task = task_of(model, self.task)
            if self._session is None:
                self._session = open_session(
                    *self._names, store=self._store, strict=self._guard.strict, rank=args.process_index, task=task
                )
            elif self._session.task != task:
                raise ConfigurationError(f"the session is of task {self._session.task!r} but the model is traced as {task!r}")
            self._remove_hooks()
            self._model = model
            if task == DETECTION:
                self._watch = DetectorWatch(model, self._detection.tracer(model, self._session))
                self._watch.attach()
                return
            self._capture = ForwardCapture(model, **self._capture_options)
            self._capture.enabled = False
            self._capture.attach()
            self._pre_hook = model.register_forward_pre_hook(self._before_forward, with_kwargs=True)

    def _remove_hooks(self) -> None:
        if self._watch is not None:
            self._watch.detach()
            self._watch = None
        if self._pre_hook is not None:
            self._pre_hook.remove()
            self._capture.detach()
            self._pre_hook = None

    def _before_forward(self, module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        self._capture.enabled = not module.training
        if module.training:
            return
        self._capture.clear()
        with self._guard("reading the model inputs"):
            labels = next((kwargs[n] for n in self._label_names if kwargs.get(n) is not None), None)
            named = [v for k, v in sorted(kwargs.items()) if k not in self._label_names]
            tensors = [t for t in [*args, *named] if isinstance(t, torch.Tensor) and t.ndim >= 1]
            if not tensors:
                raise TraceValidationError("the model was called without any batch tensor to hash")
            arrays = [to_numpy(t) for t in tensors if t.shape[0] == tensors[0].shape[0]]
            previews = None
            if self.previews:
                images = kwargs.get("pixel_values", args[0] if args else None)
                if not isinstance(images, torch.Tensor) or images.ndim < 3:
                    raise TraceValidationError("previews=True needs image inputs: the model's pixel_values")
                previews = image_previews(to_numpy(images), True)
            self._pending = (hash_samples(arrays), None if labels is None else to_numpy(labels), previews)

    def _take(self, dataset: Any) -> _Batch | DetectionBatch:
        return self._take_detections(dataset) if self._watch is not None else self._take_batch()

    def _take_batch(self) -> _Batch:
        pending, self._pending = self._pending, None
        if pending is None:
            raise TraceValidationError("the model ran no eval-mode forward in this prediction step")
        hashes, labels, previews = pending
        scores, features = self._capture.take(len(hashes))
        if scores is None:
            raise TraceValidationError("the model's output has no logits (a tensor, .logits or ['logits'])")
        return _Batch(scores, features, labels, hashes, previews)

    def _take_detections(self, dataset: Any) -> DetectionBatch:
        """The detection rows of this step's eval forward: its output post-processed by the family's
        adapter, ground truth and original sizes from the ``labels`` it was given."""
        forward = self._watch.take()
        labels = next((forward.kwargs[n] for n in self._label_names if forward.kwargs.get(n) is not None), None)
        if labels is None:
            raise TraceValidationError(
                f"the detector was called without {self._label_names}: the ground truth (boxes, class_labels) is needed"
            )
        targets, sizes = hf_detection_targets(labels)
        positions = np.arange(self._seen, self._seen + len(targets))
        self._seen += len(targets)
        ids = positions if self._world_size == 1 else None
        if self.id_column is not None:
            ids = column_at(dataset, self.id_column, positions)
            if ids is None:
                raise TraceValidationError(f"id_column {self.id_column!r} is not a column of the evaluated dataset")
        return self._watch.tracer.batch_from_output(
            forward.output, forward.images(exclude=tuple(self._label_names)), targets, state=forward.state,
            input_ids=ids, image_sizes=sizes,
        )

    def _record(self, batches: list[_Batch | DetectionBatch | None], tag: RowTag, dataset: Any) -> None:
        if None in batches:
            raise TraceValidationError(f"{batches.count(None)} batches of this evaluation were not captured; it is not recorded")
        if self._watch is not None:
            for batch in batches:
                record_batch(self._session, tag, batch)
            return
        sizes = [len(b.hashes) for b in batches]
        positions = np.arange(sum(sizes))
        ids = positions if self._world_size == 1 else None
        if self.id_column is not None:
            ids = self._column(dataset, self.id_column, positions, tag.dataset_type)
        labels = None
        if any(b.labels is None for b in batches):
            labels = next((v for c in LABEL_COLUMNS if (v := column_at(dataset, c, positions)) is not None), None)
            if labels is None:
                raise TraceValidationError(f"no labels reached the model and the dataset has none of {LABEL_COLUMNS}")
        start = 0
        for batch, size in zip(batches, sizes):
            part = slice(start, start + size)
            start += size
            record_rows(
                self._session, tag, scores=batch.scores, labels=batch.labels if labels is None else labels[part],
                input_hashes=batch.hashes, ids=None if ids is None else ids[part], features=batch.features,
                score_type=self.score_type, previews=batch.previews,
            )

    def _column(self, dataset: Any, column: str, positions: np.ndarray, dataset_type: str) -> np.ndarray:
        values = column_at(dataset, column, positions)
        if values is None:  # the Trainer dropped it (remove_unused_columns on a datasets.Dataset)
            trainer = find_trainer()
            source = None if trainer is None else trainer.eval_dataset
            if isinstance(source, dict):
                source = source.get(dataset_type)
            if source is not None and len(source) == len(dataset):
                values = column_at(source, column, positions)
        if values is None:
            raise TraceValidationError(f"id_column {column!r} is not a column of the evaluated dataset")
        return values

    def _trace_train(self, args: TrainingArguments, model: torch.nn.Module, loader: Any) -> Any:
        if loader is None or not hasattr(loader.dataset, "__len__"):
            raise TraceValidationError("trace_train_every_n_epochs needs a training dataset with a length")
        dataset, collate = loader.dataset, loader.collate_fn
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        self._batches, self._seen = [], 0
        try:
            with torch.no_grad():
                for idx in BatchSampler(range(len(dataset)), args.per_device_eval_batch_size, drop_last=False):
                    batch = collate([dataset[i] for i in idx])
                    model(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
                    self._batches.append(self._take(dataset))
        finally:
            model.train(was_training)
        return dataset
