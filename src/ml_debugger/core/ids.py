"""Validation of the per-sample ids and hashes of a traced batch."""

from __future__ import annotations

import numpy as np

from ml_debugger.exceptions import TraceValidationError


def as_id_vector(values: object, batch: int, field: str) -> np.ndarray:
    """``(batch,)`` object array of string ids from ints, strings, bytes or integral floats;
    TraceValidationError naming ``field`` for anything else or a length that is not ``batch``."""
    array = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise TraceValidationError(f"{field} must be one id per sample, shape (batch,); got shape {array.shape}")
    if len(array) != batch:
        raise TraceValidationError(f"{field} has {len(array)} entries but the model output has {batch} rows")
    if array.dtype.kind in "iuU":  # the common cases, vectorised
        return array.astype(str).astype(object)
    if array.dtype == object and all(type(v) is str for v in array):
        return array.copy()
    out = np.empty(batch, dtype=object)
    for i, value in enumerate(array.tolist()):
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if value is None or isinstance(value, (list, tuple, dict, float)) and not _is_integral(value):
            raise TraceValidationError(f"{field}[{i}] must be an int or a string; got {value!r}")
        out[i] = str(int(value)) if isinstance(value, float) else str(value)
    return out


def _is_integral(value: object) -> bool:
    return isinstance(value, float) and value.is_integer()
