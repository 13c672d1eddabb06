"""What every framework callback shares, free of any framework: failure policy, scheduling,
sessions, batch layouts and recording numpy rows through the core engine."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml_debugger.core import TraceSession, hash_samples
from ml_debugger.core.previews import encode_previews
from ml_debugger.core.writer import TraceBatch
from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.names import validate_name
from ml_debugger.store import TraceStore
from ml_debugger.tasks.classification import make_classification_batch

logger = logging.getLogger(__name__)

INPUT_KEYS = ("x", "input", "inputs", "image", "images")
LABEL_KEYS = ("y", "label", "labels", "target", "targets")
ID_KEYS = ("id", "ids", "input_id", "index")


class TracingGuard:
    """Runs tracing work so that a failure never stops training, unless ``strict``.

    The first failure is reported by one warning naming the cause (and logged with its traceback);
    later failures are logged at debug level. Training goes on either way. The guard catches every
    ``Exception`` on purpose: it sits at the framework boundary, where tracing code meets user
    models, batches and a store that may fail in ways no narrower type names, and the promise is
    that tracing never ends a training run. The traceback is kept in the log.
    """

    def __init__(self, integration: str, *, strict: bool = False) -> None:
        self.integration = integration
        self.strict = strict
        self.failures = 0

    @contextmanager
    def __call__(self, action: str) -> Iterator[None]:
        """Run the ``with`` body; on failure re-raise if strict, else report and continue."""
        try:
            yield
        except Exception as exc:
            if self.strict:
                raise
            self._report(action, exc)

    def _report(self, action: str, exc: Exception) -> None:
        self.failures += 1
        if self.failures > 1:
            logger.debug("ml-debugger (%s): %s failed again", self.integration, action, exc_info=exc)
            return
        message = (
            f"ml-debugger ({self.integration}): {action} failed: {type(exc).__name__}: {exc}. "
            "Training continues; traces may be missing from here on (pass strict=True to raise instead). "
            "Further failures are logged at debug level."
        )
        logger.warning(message, exc_info=exc)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def is_due(epoch: int, every_n_epochs: int | None) -> bool:
    """Whether ``epoch`` (0-based) is traced: every ``n``-th epoch, counting from 1 (as Lightning's
    ``check_val_every_n_epoch``); ``None`` or 0 means never."""
    if not every_n_epochs:
        return False
    return (epoch + 1) % every_n_epochs == 0


def check_every_n(value: int | None, field: str) -> int | None:
    """``value`` if it is ``None`` or an int >= 0, else a ConfigurationError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigurationError(f"{field} must be None or an int >= 0; got {value!r}")
    return value


def open_session(
    model_name: str | None,
    version_name: str | None,
    *,
    store: TraceStore | None,
    strict: bool,
    rank: int | None = None,
    task: str = "classification",
) -> TraceSession:
    """A new session of ``model_name``/``version_name`` for ``task``."""
    if model_name is None or version_name is None:
        raise ConfigurationError(
            "pass model_name and version_name (or session=TraceSession(...)); "
            f"got model_name={model_name!r}, version_name={version_name!r}"
        )
    return TraceSession(model_name, version_name, task, store=store, rank=rank, strict=strict)


def check_names(session: TraceSession | None, model_name: str | None, version_name: str | None) -> None:
    """Fail at construction on bad names, unless a ready session is given (its names were checked)."""
    if session is None:
        validate_name(model_name, "model_name")
        validate_name(version_name, "version_name")


def dataset_type_for(index: int, names: Sequence[str] | None, default: str = "val") -> str:
    """The dataset_type of the ``index``-th evaluation set: ``names[index]``, else ``val``, ``val_1``, ..."""
    if names is not None:
        if index >= len(names):
            raise ConfigurationError(
                f"dataset_names has {len(names)} names {list(names)} but evaluation set {index} was run"
            )
        return names[index]
    return default if index == 0 else f"{default}_{index}"


def split_batch(batch: Any) -> tuple[Any, Any, Any | None]:
    """``(inputs, labels, ids or None)`` of a batch laid out as ``(x, y)``, ``(x, y, ids)`` or a dict.

    A dict's inputs are under one of ``INPUT_KEYS``, or are the rest of the dict (e.g. tokenizer
    output) when none is present; labels under ``LABEL_KEYS``; ids under ``ID_KEYS``.
    """
    if isinstance(batch, Mapping):
        label_key = next((k for k in LABEL_KEYS if k in batch), None)
        if label_key is None:
            raise TraceValidationError(
                f"the batch dict has no labels under any of {LABEL_KEYS}; its keys: {sorted(batch)}; "
                "pass batch_to_trace=lambda batch: (inputs, labels, ids_or_None)"
            )
        id_key = next((k for k in ID_KEYS if k in batch), None)
        input_key = next((k for k in INPUT_KEYS if k in batch), None)
        if input_key is not None:
            inputs = batch[input_key]
        else:
            inputs = {k: v for k, v in batch.items() if k not in (label_key, id_key)}
        return inputs, batch[label_key], None if id_key is None else batch[id_key]
    if isinstance(batch, (list, tuple)) and len(batch) in (2, 3):
        return batch[0], batch[1], batch[2] if len(batch) == 3 else None
    raise TraceValidationError(
        f"cannot find inputs and labels in a batch of type {type(batch).__name__}"
        + (f" with {len(batch)} items" if isinstance(batch, (list, tuple)) else "")
        + "; expected (x, y), (x, y, ids) or a dict; pass batch_to_trace=lambda batch: (inputs, labels, ids_or_None)"
    )


@dataclass(frozen=True)
class RowTag:
    """Where a batch of rows belongs: its dataset_type, epoch, step and final-validation flag."""

    dataset_type: str
    epoch: int
    global_step: int | None = None
    final_validation: bool | None = None


def record_rows(
    session: TraceSession,
    tag: RowTag,
    *,
    scores: np.ndarray,
    labels: np.ndarray,
    input_hashes: np.ndarray | None = None,
    inputs: Sequence[np.ndarray] | None = None,
    ids: np.ndarray | None = None,
    features: np.ndarray | None = None,
    score_type: str = "logits",
    previews: Sequence[bytes] | None = None,
) -> None:
    """Validate one batch of classification rows and record it; hashes come from ``inputs`` unless given."""
    if input_hashes is None:
        if not inputs:
            raise TraceValidationError("record_rows needs input_hashes or the input arrays to hash")
        input_hashes = hash_samples(inputs)
    batch = make_classification_batch(
        scores, labels, input_hashes=input_hashes, input_ids=ids, features=features, score_type=score_type,
        previews=previews,
    )
    record_batch(session, tag, batch)


def record_batch(session: TraceSession, tag: RowTag, batch: TraceBatch) -> None:
    """Record one validated batch of any task with the tags of ``tag``."""
    session.record(
        batch, dataset_type=tag.dataset_type, n_epoch=tag.epoch, global_step=tag.global_step,
        final_validation=tag.final_validation,
    )


def image_previews(images: Sequence[np.ndarray] | np.ndarray, enabled: bool) -> list[bytes] | None:
    """JPEG previews of a batch of images when ``enabled`` (``previews=True``), else None."""
    return encode_previews(list(images)) if enabled else None
