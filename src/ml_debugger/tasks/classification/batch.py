"""Classification rows: validation of a traced batch and its Arrow columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa

from ml_debugger.core.ids import as_id_vector
from ml_debugger.core.schema import fixed_size_list
from ml_debugger.exceptions import TraceValidationError
from ml_debugger.tasks._columns import preview_column
from ml_debugger.tasks._validation import as_previews
from ml_debugger.tasks.classification.schema import LABEL, LOSS, SCORE_TYPES, SCORES_VALUE_TYPE

_PROBABILITY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ClassificationBatch:
    """One validated batch of classification traces (numpy arrays, batch-first).

    ``nonfinite_rows`` counts rows whose scores contain NaN or inf; they are recorded as they are.
    """

    task: ClassVar[str] = "classification"
    scores: np.ndarray
    labels: np.ndarray
    input_ids: np.ndarray
    input_hashes: np.ndarray
    features: np.ndarray | None
    score_type: str
    nonfinite_rows: int
    previews: tuple[bytes, ...] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def schema_key(self) -> tuple:
        """Batches with equal keys have equal column types and can share a part file."""
        features = None if self.features is None else (self.features.shape[1], self.features.dtype.str)
        return (self.task, self.scores.shape[1], self.score_type, features, self.previews is not None)

    @classmethod
    def columns(cls, batches: list[ClassificationBatch]) -> dict[str, pa.Array | pa.ChunkedArray]:
        """The task's Arrow columns for the rows of ``batches`` (equal ``schema_key``), in order.

        Built in the writer thread, off the training loop; feature vectors are not copied.
        """
        scores = np.concatenate([b.scores for b in batches])
        labels = np.concatenate([b.labels for b in batches])
        score_type = batches[0].score_type
        columns: dict[str, pa.Array | pa.ChunkedArray] = {
            LABEL.name: pa.array(labels, type=LABEL.type),
            "scores": fixed_size_list(scores, SCORES_VALUE_TYPE),
            "score_type": pa.repeat(pa.scalar(score_type), len(labels)).dictionary_encode(),
            LOSS.name: pa.array(per_sample_loss(scores, labels, score_type), type=LOSS.type),
        }
        if batches[0].features is not None:
            value_type = pa.from_numpy_dtype(batches[0].features.dtype)
            columns["features"] = pa.chunked_array([fixed_size_list(b.features, value_type) for b in batches])
        if batches[0].previews is not None:
            columns["preview"] = preview_column(batches)
        return columns


def per_sample_loss(scores: np.ndarray, labels: np.ndarray, score_type: str) -> np.ndarray:
    """Cross-entropy of each row in nats (NaN where the scores are not finite)."""
    rows = np.arange(len(labels))
    scores = scores.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if score_type == "probabilities":
            return -np.log(np.clip(scores[rows, labels], 1e-12, 1.0))
        top = scores.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scores - top).sum(axis=1)) + top[:, 0]
        return log_norm - scores[rows, labels]


def make_classification_batch(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    input_hashes: np.ndarray,
    input_ids: np.ndarray | None = None,
    features: np.ndarray | None = None,
    score_type: str = "logits",
    previews: Sequence[bytes] | None = None,
) -> ClassificationBatch:
    """Validate numpy arrays of one batch and return them as a :class:`ClassificationBatch`.

    Args:
        scores: ``(batch, n_classes)`` logits or probabilities; ``(batch,)`` or ``(batch, 1)``
            is a binary model's single logit / probability of class 1.
        labels: ``(batch,)`` integer class indices in ``[0, n_classes)``.
        input_hashes: ``(batch,)`` content hashes of the inputs.
        input_ids: ``(batch,)`` ids (ints or strings, stored as strings); ``None`` uses the hashes.
        features: ``(batch, ...)`` feature vectors, flattened to ``(batch, d)``; ``None`` for none.
        score_type: ``"logits"`` or ``"probabilities"``.
        previews: one small JPEG per row (``ml_debugger.core.previews``), or None.

    Raises:
        TraceValidationError: naming the field whose shape, type or range is wrong.
    """
    if score_type not in SCORE_TYPES:
        raise TraceValidationError(f"score_type must be one of {SCORE_TYPES}; got {score_type!r}")
    scores = _as_score_matrix(scores, score_type)
    batch = scores.shape[0]
    labels = _as_labels(labels, batch, scores.shape[1])
    input_hashes = as_id_vector(input_hashes, batch, "input_hashes")
    input_ids = input_hashes if input_ids is None else as_id_vector(input_ids, batch, "input_ids")
    if features is not None:
        features = _as_features(features, batch)
    finite = np.isfinite(scores).all(axis=1)
    nonfinite_rows = int(batch - finite.sum())
    if score_type == "probabilities" and finite.any():
        sums = scores[finite].sum(axis=1)
        if np.abs(sums - 1.0).max() > _PROBABILITY_TOLERANCE or scores[finite].min() < 0:
            raise TraceValidationError(
                "scores were declared score_type='probabilities' but rows are not probability vectors "
                f"(row sums range {sums.min():.4g}..{sums.max():.4g}); pass score_type='logits' for raw logits"
            )
    return ClassificationBatch(
        scores=scores, labels=labels, input_ids=input_ids, input_hashes=input_hashes,
        features=features, score_type=score_type, nonfinite_rows=nonfinite_rows,
        previews=as_previews(previews, batch),
    )


def _as_score_matrix(scores: np.ndarray, score_type: str) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.dtype.kind not in "fiu":
        raise TraceValidationError(f"model output (logits) must be numeric; got dtype {scores.dtype}")
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.ndim == 1:  # a binary model's single output for class 1
        scores = scores.astype(np.float32)
        other = 1.0 - scores if score_type == "probabilities" else np.zeros_like(scores)
        scores = np.stack([other, scores], axis=1)
    if scores.ndim != 2:
        raise TraceValidationError(
            f"model output (logits) must have shape (batch, n_classes); got shape {scores.shape}"
        )
    if scores.shape[0] == 0:
        raise TraceValidationError("model output (logits) has an empty batch")
    return np.array(scores, dtype=np.float32, copy=True)


def _as_labels(labels: np.ndarray, batch: int, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise TraceValidationError(
            f"labels must have shape (batch,) of class indices; got shape {labels.shape} "
            "(one-hot labels: pass labels.argmax(1))"
        )
    if len(labels) != batch:
        raise TraceValidationError(f"labels has {len(labels)} rows but the model output has {batch}")
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iub":
        raise TraceValidationError(f"labels must be integer class indices; got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    bad = labels[(labels < 0) | (labels >= n_classes)]
    if bad.size:
        raise TraceValidationError(
            f"labels must be class indices in [0, {n_classes}) for a model with {n_classes} outputs; "
            f"got {sorted(set(bad.tolist()))[:10]}"
        )
    return labels


def _as_features(features: np.ndarray, batch: int) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim == 0 or features.shape[0] != batch:
        raise TraceValidationError(
            f"features have shape {features.shape} but the model output has {batch} rows"
        )
    if features.dtype.kind not in "fiu":
        raise TraceValidationError(f"features must be numeric; got dtype {features.dtype}")
    dtype = np.float16 if features.dtype == np.float16 else np.float32
    return np.array(features.reshape(batch, -1), dtype=dtype, copy=True)
