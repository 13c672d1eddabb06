"""Checks of per-box arrays in a traced batch; every error names the field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ml_debugger.exceptions import TraceValidationError


def as_matrix(value: Any, width: int, field: str, layout: str) -> np.ndarray:
    """``(n, width)`` finite float32 rows (an empty input is ``(0, width)``); ``layout`` names the
    columns for the error message (``"[x1, y1, x2, y2]"``)."""
    matrix = np.asarray(value, dtype=np.float64) if not isinstance(value, np.ndarray) else value
    if matrix.size == 0:
        return np.zeros((0, width), np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != width:
        raise TraceValidationError(f"{field} must have shape (n, {width}) as {layout}; got shape {matrix.shape}")
    if matrix.dtype.kind not in "fiu":
        raise TraceValidationError(f"{field} must be numeric; got dtype {matrix.dtype}")
    if not np.isfinite(matrix).all():
        raise TraceValidationError(f"{field} has NaN or infinite coordinates")
    return matrix.astype(np.float32)


def as_vector(value: Any, n: int, field: str, kind: str) -> np.ndarray:
    """A ``(n,)`` vector: ``kind`` ``"label"`` (int64 >= 0), ``"score"`` (finite float32), ``"flag"`` (bool)."""
    array = np.asarray(value)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.size == 0 and n == 0:
        array = array.reshape(0)
    if array.ndim != 1 or len(array) != n:
        raise TraceValidationError(f"{field} must have shape ({n},), one per box; got shape {array.shape}")
    if kind == "flag":
        return array.astype(bool)
    if array.dtype.kind not in "fiub":
        raise TraceValidationError(f"{field} must be numeric; got dtype {array.dtype}")
    if kind == "score":
        if not np.isfinite(array).all():
            raise TraceValidationError(f"{field} has NaN or infinite scores")
        return array.astype(np.float32)
    if array.dtype.kind == "f":
        if not (np.isfinite(array).all() and (array == np.round(array)).all()):
            raise TraceValidationError(f"{field} must be integer class ids; got {array[:5].tolist()}")
    labels = array.astype(np.int64)
    if (labels < 0).any():
        raise TraceValidationError(f"{field} must be class ids >= 0; got {sorted(set(labels[labels < 0].tolist()))[:5]}")
    return labels


def as_features(value: Any, n: int, field: str) -> np.ndarray | None:
    """``(n, d)`` float16/float32 feature vectors (flattened), or None."""
    if value is None:
        return None
    features = np.asarray(value)
    if features.ndim < 1 or features.shape[0] != n:
        raise TraceValidationError(f"{field} must have one feature vector per box ({n}); got shape {features.shape}")
    if features.dtype.kind not in "fiu":
        raise TraceValidationError(f"{field} must be numeric; got dtype {features.dtype}")
    dtype = np.float16 if features.dtype == np.float16 else np.float32
    width = int(np.prod(features.shape[1:]))
    return np.ascontiguousarray(features.reshape(n, width), dtype=dtype)


def entry(mapping: Any, key: str, index: int, field: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise TraceValidationError(f"{field}[{index}] must be a dict with {key!r}; got {type(mapping).__name__}")
    if key not in mapping:
        raise TraceValidationError(f"{field}[{index}] has no {key!r}; it has {sorted(map(str, mapping))}")
    return mapping[key]


def as_previews(previews: Sequence[bytes] | None, batch: int) -> tuple[bytes, ...] | None:
    """One JPEG (bytes) per row, or None."""
    if previews is None:
        return None
    previews = tuple(previews)
    if len(previews) != batch or not all(isinstance(p, bytes) for p in previews):
        raise TraceValidationError(f"previews must be {batch} JPEG byte strings, one per row; got {len(previews)}")
    return previews
