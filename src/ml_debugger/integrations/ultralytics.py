"""Ultralytics YOLO: ``add_mldebugger_callbacks(model, model_name="my-yolo", version_name="v1")``.

Records every image of every validation Ultralytics runs (after each epoch, the final validation of
the best weights, and a standalone ``model.val()``), captured inside the validator itself: the
predictions after its own NMS and the ground truth it matched against, in original-image pixels,
with neck features, tagged with the trainer's epoch and step, and committed when the validation ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml_debugger.core import TraceSession
from ml_debugger.exceptions import ConfigurationError
from ml_debugger.integrations._common import (
    RowTag,
    TracingGuard,
    check_every_n,
    check_names,
    is_due,
    record_batch,
)

try:
    import ultralytics  # noqa: F401  (the extra's own package, before the modules that need it)
except ModuleNotFoundError as exc:
    if (exc.name or "").split(".")[0] not in ("ultralytics", "torch"):
        raise
    raise ImportError(
        f"ml_debugger.integrations.ultralytics needs {exc.name}, which is not installed: "
        "pip install 'ml-debugger[ultralytics]'"
    ) from exc

from ml_debugger.integrations._ultralytics_rows import FileHashes, batch_rows
from ml_debugger.integrations._ultralytics_validator import ValidatorCapture, check_validator
from ml_debugger.names import validate_name
from ml_debugger.store import TraceStore
from ml_debugger.tasks._columns import Thresholds
from ml_debugger.training.detection._ultralytics import label_names

EVENTS = ("on_train_start", "on_val_start", "on_val_end", "on_fit_epoch_end", "teardown")


def validation_tag(validator: Any, trainer: Any, dataset_type: str, last_epoch: int | None) -> RowTag:
    """Which rows a validation run writes.

    - during training (``validator.training``): the trainer's 0-based ``epoch``, not final;
    - the trainer's own validator after training (``final_eval`` with the best weights):
      ``epoch + 1``, flagged ``final_validation`` (Ultralytics logs it at that step too, "not
      overwriting the last epoch"), so it never replaces the last epoch's rows;
    - any other validator (``model.val()``): flagged final, at the epoch of the last validation
      these callbacks traced in this process, else 0.
    """
    if validator.training:
        if trainer is None:
            raise ConfigurationError(
                "a training validation ran but on_train_start never reached the callbacks; attach them with "
                "add_mldebugger_callbacks(model, ...) before model.train()"
            )
        return RowTag(dataset_type, int(trainer.epoch), training_step(trainer), final_validation=False)
    if trainer is not None and validator is getattr(trainer, "validator", None):
        return RowTag(dataset_type, int(trainer.epoch) + 1, training_step(trainer), final_validation=True)
    return RowTag(dataset_type, 0 if last_epoch is None else last_epoch, None, final_validation=True)


def training_step(trainer: Any) -> int:
    """Training batches run by the end of the trainer's current epoch (Ultralytics keeps no step counter)."""
    return (int(trainer.epoch) + 1) * len(trainer.train_loader)


class MLDebuggerCallbacks:
    """The callbacks ``add_mldebugger_callbacks`` registers; see its arguments.

    A session is opened in each process on its first validation (in DDP, every rank opens its own
    and writes its own rows; they are cloudpickled to the workers without it).
    """

    def __init__(
        self,
        model_name: str | None = None,
        version_name: str | None = None,
        *,
        session: TraceSession | None = None,
        store: TraceStore | None = None,
        strict: bool = False,
        dataset_type: str | None = None,
        record_features: bool = True,
        previews: bool = False,
        every_n_epochs: int | None = 1,
        trace_final_validation: bool = True,
    ) -> None:
        check_names(session, model_name, version_name)
        if session is not None:
            model_name, version_name = session.model_name, session.version_name
        self._names = (model_name, version_name)
        self._session, self._owns_session, self._store = session, session is None, store
        self._guard = TracingGuard("ultralytics", strict=strict)
        self.dataset_type = None if dataset_type is None else validate_name(dataset_type, "dataset_type")
        self.record_features, self.previews = record_features, previews
        self.every_n_epochs = check_every_n(every_n_epochs, "every_n_epochs")
        self.trace_final_validation = trace_final_validation
        self._trainer: Any = None
        self._captures: dict[int, tuple[ValidatorCapture, RowTag, dict[str, Any]]] = {}
        self._last_epoch: int | None = None
        self._hashes = FileHashes()

    def attach(self, model: Any) -> MLDebuggerCallbacks:
        """Register every callback on ``model`` (a YOLO object) through its own ``add_callback``."""
        for event in EVENTS:
            model.add_callback(event, getattr(self, event))
        return self

    @property
    def session(self) -> TraceSession | None:
        """The session this process records into (None before its first validation)."""
        return self._session

    # -- Ultralytics events ----------------------------------------------------------------------

    def on_train_start(self, trainer: Any) -> None:
        self._trainer = trainer

    def on_val_start(self, validator: Any) -> None:
        self._finish(validator)  # a capture left by an interrupted run of this validator
        with self._guard("preparing to trace a validation"):
            check_validator(validator)
            dataset = self.dataset_type or validate_name(str(validator.args.split or "val"), "dataset_type")
            tag = validation_tag(validator, self._trainer, dataset, self._last_epoch)
            if not self._is_traced(validator, tag):
                return
            self._open_session()
            capture = ValidatorCapture(
                validator, lambda preds, batch, maps: self._record(validator, preds, batch, maps),
                record_features=self.record_features,
            )
            self._captures[id(validator)] = (capture, tag, {})

    def on_val_end(self, validator: Any) -> None:
        self._finish(validator)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        if trainer.validator is not None:
            self._finish(trainer.validator)  # ranks > 0 get no on_val_end

    def teardown(self, trainer: Any) -> None:
        if trainer.validator is not None:
            self._finish(trainer.validator)
        self._trainer = None
        if self._owns_session and self._session is not None:
            with self._guard("closing the trace session"):
                self._session.close()
            self._session = None

    # -- actions ---------------------------------------------------------------------------------

    def _is_traced(self, validator: Any, tag: RowTag) -> bool:
        if validator.training:
            return is_due(tag.epoch, self.every_n_epochs)
        final_eval = self._trainer is not None and validator is getattr(self._trainer, "validator", None)
        return self.trace_final_validation or not final_eval

    def _open_session(self) -> None:
        if self._session is None:
            self._session = TraceSession(*self._names, "detection2d", store=self._store, strict=self._guard.strict)

    def _record(self, validator: Any, preds: Any, batch: Any, maps: Any) -> None:
        with self._guard("tracing a validation batch"):
            _, tag, cache = self._captures[id(validator)]
            if not cache:
                cache.update(self._validation_constants(validator))
            rows = batch_rows(preds, batch, hashes=self._hashes, maps=maps, previews=self.previews, **cache)
            record_batch(self._session, tag, rows)

    @staticmethod
    def _validation_constants(validator: Any) -> dict[str, Any]:
        """What every batch of one validation shares, read once it has started (after ``init_metrics``)."""
        args, data = validator.args, validator.data or {}
        names = data.get("names") or validator.names
        count = int(data.get("nc") or len(names))
        root = data.get("path")
        return {
            "root": None if root is None else Path(root).resolve(),
            "thresholds": Thresholds(float(args.conf), float(args.iou), int(args.max_det)),
            "label_names": label_names(names, count),
        }

    def _finish(self, validator: Any) -> None:
        """Unwrap ``validator`` and commit what it traced (idempotent)."""
        entry = self._captures.pop(id(validator), None)
        if entry is None:
            return
        capture, tag, _ = entry
        capture.restore()
        self._last_epoch = tag.epoch
        with self._guard("committing the validation traces"):
            self._session.commit()

    def __getstate__(self) -> dict[str, Any]:
        """For DDP workers (Ultralytics cloudpickles the callbacks): without the process's session,
        trainer and captures; each worker opens its own session."""
        state = dict(self.__dict__)
        state.update(_session=None, _owns_session=True, _trainer=None, _captures={}, _hashes=FileHashes())
        return state


def add_mldebugger_callbacks(
    model: Any,
    model_name: str | None = None,
    version_name: str | None = None,
    *,
    session: TraceSession | None = None,
    store: TraceStore | None = None,
    strict: bool = False,
    dataset_type: str | None = None,
    record_features: bool = True,
    previews: bool = False,
    every_n_epochs: int | None = 1,
    trace_final_validation: bool = True,
) -> MLDebuggerCallbacks:
    """Trace every validation of an Ultralytics ``YOLO`` model (training and ``model.val()``).

    Args:
        model: the ``YOLO`` object, before ``model.train()`` / ``model.val()``.
        model_name, version_name: names the traces are stored under (or pass ``session``).
        session: a ``TraceSession(..., "detection2d")`` to record into instead of opening one.
        store, strict: passed to the session; ``strict=True`` also raises tracing failures
            instead of warning once and letting training go on.
        dataset_type: the rows' dataset_type; default the validator's ``split`` (``"val"``).
        record_features: record neck features per box and per image (the detect head's inputs
            sampled at each box centre; pooled).
        previews: store a small JPEG of each image as the model saw it, for the dashboard (off by default).
        every_n_epochs: trace the validation of every n-th epoch (``(epoch + 1) % n == 0``).
        trace_final_validation: also trace the trainer's final validation of the best weights.

    Returns:
        the registered callbacks (``.session`` is the session of this process).
    """
    callbacks = MLDebuggerCallbacks(
        model_name, version_name, session=session, store=store, strict=strict, dataset_type=dataset_type,
        record_features=record_features, previews=previews, every_n_epochs=every_n_epochs,
        trace_final_validation=trace_final_validation,
    )
    return callbacks.attach(model)
