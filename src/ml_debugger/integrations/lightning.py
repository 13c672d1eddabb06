"""PyTorch Lightning: ``Trainer(callbacks=[MLDebuggerCallback("my-model", "v1")])``.

Records logits, penultimate features, labels and ids of every validation sample while Lightning's
own validation loop runs (forward hooks live only during the validation epoch), tagged with
``trainer.current_epoch`` and ``trainer.global_step``, and commits each epoch when its
validation ends. A module holding a detector of a family the detection tracers recognise (or
``task="detection2d"``) is traced as a 2-D detector: the detections of the detector's own
eval-mode forward in ``validation_step``, read through its family's adapter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    IterableDataset,
    SequentialSampler,
)

from ml_debugger.core import TraceSession
from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.integrations._common import (
    RowTag,
    TracingGuard,
    check_every_n,
    check_names,
    dataset_type_for,
    image_previews,
    is_due,
    open_session,
    record_batch,
    record_rows,
    split_batch,
)
from ml_debugger.integrations._detection import (
    CLASSIFICATION,
    DETECTION,
    DetectionOptions,
    check_task,
    count_targets,
)
from ml_debugger.integrations._detection_torch import DetectorWatch, find_detector
from ml_debugger.names import validate_name
from ml_debugger.store import TraceStore
from ml_debugger.training._hooks import ForwardCapture
from ml_debugger.training._torch import input_arrays, to_numpy

logger = logging.getLogger(__name__)

BatchToTrace = Callable[[Any], tuple[Any, Any, Any]]


def flat_loaders(iterables: Any) -> tuple[list[Any], list[str] | None]:
    """The dataloaders Lightning runs in order (``dataloader_idx``), and their names when given as a dict."""
    if isinstance(iterables, Mapping):
        return list(iterables.values()), [str(k) for k in iterables]
    if isinstance(iterables, Sequence):
        return list(iterables), None
    return [iterables], None


def index_batches(loader: Any) -> list[np.ndarray] | None:
    """The dataset indices of every batch ``loader`` yields, when its order is fixed: a sequential
    sampler, or a non-shuffling DistributedSampler (whose padding repeats real indices)."""
    if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
        return None
    sampler = loader.sampler
    fixed = isinstance(sampler, SequentialSampler) or (type(sampler) is DistributedSampler and not sampler.shuffle)
    if not fixed or loader.batch_sampler is None:
        return None
    return [np.asarray(batch, dtype=np.int64) for batch in loader.batch_sampler]


def _is_stream(loader: Any) -> bool:
    return isinstance(loader, DataLoader) and isinstance(loader.dataset, IterableDataset)


class MLDebuggerCallback(pl.Callback):
    """Traces Lightning validation loops through the ml-debugger engine.

    Args:
        model_name, version_name: names the traces are stored under (or pass ``session``).
        session: a :class:`TraceSession` to record into instead of building one.
        store, strict: passed to the session; ``strict=True`` also raises tracing failures
            instead of warning once and letting training go on.
        dataset_names: the dataset_type of each validation dataloader; default ``val``, ``val_1``, ...
            (or the keys when the dataloaders are a dict).
        batch_to_trace: ``batch -> (inputs, labels, ids or None)`` for batches that are not
            ``(x, y)``, ``(x, y, ids)`` or a dict with ``x``/``y``/``id``-style keys.
        logits_module: name of the module whose output is the logits (``""``: the LightningModule);
            found on the first batch by default.
        feature_layer, record_features: the module whose output is recorded as features (default:
            the input of the final ``nn.Linear``); ``record_features=False`` records none.
        score_type: ``"logits"`` or ``"probabilities"``.
        every_n_epochs: trace the validation of every n-th epoch (``(epoch + 1) % n == 0``).
        trace_train_every_n_epochs: also run the training split through ``forward`` in eval mode
            at the end of every n-th epoch (dataset_type ``"train"``); ``None`` never.
        previews: store a small JPEG of each image input for the dashboard (off by default).
        task: ``"classification"``, ``"detection2d"`` or None: detection when the module or one of
            its submodules is a detector of a family `ObjectDetectionTracer` recognises.
        detector_module: the name of the detector submodule (``""``: the LightningModule); found
            by its family by default.
        score_thresh, iou_thresh, max_detections_per_image, output_mapping, label_names,
            num_classes: detection options, as `ObjectDetectionTracer` takes them.

    Ids: from the batch when it carries them, else the dataset index of each sample (sequential or
    non-shuffling distributed samplers), else the position in an iterable dataset, else the input hash.
    Detection batches are ``(images, targets)``, ``(images, targets, ids)`` or a dict with those
    keys (targets in the reference formats), or what ``batch_to_trace`` returns.
    """

    def __init__(
        self,
        model_name: str | None = None,
        version_name: str | None = None,
        *,
        session: TraceSession | None = None,
        store: TraceStore | None = None,
        strict: bool = False,
        dataset_names: Sequence[str] | None = None,
        batch_to_trace: BatchToTrace | None = None,
        logits_module: str | None = None,
        feature_layer: str | None = None,
        record_features: bool = True,
        score_type: str = "logits",
        every_n_epochs: int | None = 1,
        trace_train_every_n_epochs: int | None = None,
        previews: bool = False,
        task: str | None = None,
        detector_module: str | None = None,
        score_thresh: float | None = None,
        iou_thresh: float | None = None,
        max_detections_per_image: int | None = None,
        output_mapping: Any = None,
        label_names: Sequence[str] | None = None,
        num_classes: int | None = None,
    ) -> None:
        check_names(session, model_name, version_name)
        self.task, self.detector_module, self.previews = check_task(task), detector_module, previews
        self._detection = DetectionOptions(
            score_thresh, iou_thresh, max_detections_per_image, output_mapping, label_names, num_classes,
            record_features, previews,
        )
        self._watch: DetectorWatch | None = None
        self._names = (model_name, version_name)
        self._session, self._owns_session, self._store = session, session is None, store
        self._guard = TracingGuard("lightning", strict=strict)
        self.dataset_names = None if dataset_names is None else [validate_name(n, "dataset_names") for n in dataset_names]
        self.batch_to_trace = batch_to_trace or split_batch
        self._capture_options = {"logits_module": logits_module, "feature_layer": feature_layer, "record_features": record_features}
        self.score_type = score_type
        self.every_n_epochs = check_every_n(every_n_epochs, "every_n_epochs")
        self.trace_train_every_n_epochs = check_every_n(trace_train_every_n_epochs, "trace_train_every_n_epochs")
        self._capture: ForwardCapture | None = None
        self._train_capture: ForwardCapture | None = None
        self._active = False
        self._plans: list[list[np.ndarray] | None] = []
        self._positions: list[int | None] = []
        self._loader_names: list[str] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        with self._guard("starting the trace session"):
            detector = None if self.task == CLASSIFICATION else find_detector(pl_module, self.detector_module)
            if detector is None and self.task == DETECTION:
                detector = pl_module  # its forward returns torchvision-format detections (or output_mapping reads it)
            task = CLASSIFICATION if detector is None else DETECTION
            if self._session is None:
                self._session = open_session(
                    *self._names, store=self._store, strict=self._guard.strict, rank=trainer.global_rank, task=task
                )
            elif self._session.task != task:
                raise ConfigurationError(f"the session is of task {self._session.task!r} but the model is traced as {task!r}")
            if detector is not None and (
                self._watch is None or self._watch.detector is not detector or self._watch.tracer.session is not self._session
            ):
                self._watch = DetectorWatch(detector, self._detection.tracer(detector, self._session))
            if self._capture is None or self._capture.model is not pl_module:
                self._capture = ForwardCapture(pl_module, **self._capture_options)
                train_options = {**self._capture_options, "logits_module": self._capture_options["logits_module"] or ""}
                self._train_capture = ForwardCapture(pl_module, **train_options)  # the extra pass calls forward

    @property
    def _recorder(self) -> ForwardCapture | DetectorWatch:
        """What keeps each validation step's outputs: the detector's watch, else the logits capture."""
        return self._watch if self._watch is not None else self._capture

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._active = False
        if self._capture is None or trainer.sanity_checking or not is_due(trainer.current_epoch, self.every_n_epochs):
            return
        with self._guard("preparing to trace the validation loop"):
            loaders, self._loader_names = flat_loaders(trainer.val_dataloaders)
            self._plans = [index_batches(loader) for loader in loaders]
            self._positions = [
                0 if plan is None and _is_stream(loader) and trainer.world_size == 1 else None
                for plan, loader in zip(self._plans, loaders)
            ]
            for i, (plan, position) in enumerate(zip(self._plans, self._positions)):
                if plan is None and position is None:
                    logger.warning(
                        "ml-debugger: validation dataloader %d has no fixed sample order (%s); its input hashes "
                        "are used as input_id (put ids in the batch to choose them)", i, type(loaders[i]).__name__,
                    )
            self._recorder.attach()
            self._active = True

    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self._active:
            self._recorder.clear()

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._active:
            return
        with self._guard("tracing a validation batch"):
            names = self.dataset_names or self._loader_names
            tag = RowTag(
                dataset_type_for(dataloader_idx, names), trainer.current_epoch, trainer.global_step,
                final_validation=trainer.state.fn == "validate",
            )
            default_ids = partial(self._default_ids, dataloader_idx, batch_idx)
            if self._watch is not None:
                self._record_detections(batch, tag, default_ids)
            else:
                self._record(self._capture, batch, tag, default_ids)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active:
            return
        self._active = False
        self._recorder.detach()
        with self._guard("committing the validation traces"):
            self._session.commit()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._capture is None or not is_due(trainer.current_epoch, self.trace_train_every_n_epochs):
            return
        with self._guard("tracing the training split"):
            self._trace_train(trainer, pl_module)
            self._session.commit()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._capture is not None:
            self._recorder.detach()
        if self._owns_session and self._session is not None:
            with self._guard("closing the trace session"):
                self._session.close()
            self._session = None

    def _record(self, capture: ForwardCapture, batch: Any, tag: RowTag, default_ids: Callable[[int], Any]) -> None:
        inputs, labels, ids = self.batch_to_trace(batch)
        labels = to_numpy(labels)
        logits, features = capture.take(len(labels))
        if logits is None:
            raise TraceValidationError(
                f"no module returned (batch={len(labels)}, n_classes) logits during the step; "
                "pass logits_module='<module name>' ('' for the LightningModule's forward)"
            )
        arrays = input_arrays(inputs)
        record_rows(
            self._session, tag, scores=logits, labels=labels, inputs=arrays,
            ids=to_numpy(ids) if ids is not None else default_ids(len(labels)), features=features,
            score_type=self.score_type, previews=image_previews(arrays[0], self.previews),
        )

    def _record_detections(self, batch: Any, tag: RowTag, default_ids: Callable[[int], Any]) -> None:
        """Record the detector's own forward of this step with the batch's ground truth and ids."""
        forward = self._watch.take()
        _, targets, ids = self.batch_to_trace(batch)
        rows = self._watch.tracer.batch_from_output(
            forward.output, forward.images(), targets, state=forward.state,
            input_ids=ids if ids is not None else default_ids(count_targets(targets)),
        )
        record_batch(self._session, tag, rows)

    def _default_ids(self, dataloader_idx: int, batch_idx: int, size: int) -> np.ndarray | None:
        plan = self._plans[dataloader_idx]
        if plan is not None:
            if batch_idx >= len(plan) or len(plan[batch_idx]) != size:
                raise TraceValidationError(
                    f"batch {batch_idx} of validation dataloader {dataloader_idx} has {size} samples but its "
                    "sampler planned a different batch; put ids in the batch or pass batch_to_trace"
                )
            return plan[batch_idx]
        start = self._positions[dataloader_idx]
        if start is None:
            return None
        self._positions[dataloader_idx] = start + size
        return np.arange(start, start + size)

    def _trace_train(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loader = flat_loaders(trainer.train_dataloader)[0][0]
        if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
            raise TraceValidationError(
                f"trace_train_every_n_epochs needs a map-style DataLoader; got {type(loader).__name__}"
            )
        dataset, collate = loader.dataset, loader.collate_fn
        indices = range(trainer.global_rank, len(dataset), trainer.world_size)
        tag = RowTag("train", trainer.current_epoch, trainer.global_step)
        if self._watch is not None:
            self._trace_train_detections(trainer, dataset, collate, indices, loader.batch_size or 1, tag)
            return
        was_training = pl_module.training
        pl_module.eval()
        capture = self._train_capture
        capture.attach()
        try:
            with torch.no_grad():
                for idx in BatchSampler(indices, loader.batch_size or 1, drop_last=False):
                    batch = trainer.strategy.batch_to_device(collate([dataset[i] for i in idx]))
                    inputs = self.batch_to_trace(batch)[0]
                    capture.clear()
                    if isinstance(inputs, Mapping):
                        pl_module(**inputs)
                    else:
                        pl_module(inputs)
                    self._record(capture, batch, tag, lambda n, idx=idx: np.asarray(idx))
        finally:
            capture.detach()
            pl_module.train(was_training)

    def _trace_train_detections(
        self, trainer: pl.Trainer, dataset: Any, collate: Callable, indices: range, batch_size: int, tag: RowTag
    ) -> None:
        """Run the training split through the detector in eval mode with its tracer."""
        tracer, detector = self._watch.tracer, self._watch.detector
        was_training = detector.training
        detector.eval()
        try:
            with torch.no_grad():
                for idx in BatchSampler(indices, batch_size, drop_last=False):
                    batch = trainer.strategy.batch_to_device(collate([dataset[i] for i in idx]))
                    images, targets, ids = self.batch_to_trace(batch)
                    tracer(images, targets, input_ids=np.asarray(idx) if ids is None else ids,
                           dataset_type=tag.dataset_type, n_epoch=tag.epoch, global_step=tag.global_step)
        finally:
            detector.train(was_training)
