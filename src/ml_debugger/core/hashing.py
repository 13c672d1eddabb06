"""Per-sample content hashes of model inputs (xxh3-128 over dtype, shape and bytes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xxhash


def hash_samples(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Hash sample ``i`` of every array (all share the leading batch dimension) into one hex digest.

    The digest covers each array's dtype and per-sample shape, so the same bytes reinterpreted
    differently hash differently. Returns an object array of 32-character strings.
    """
    if not arrays:
        raise ValueError("hash_samples needs at least one array")
    batch = len(arrays[0])
    flat = []
    for array in arrays:
        if len(array) != batch:
            raise ValueError(f"inputs disagree on the batch size: {len(array)} vs {batch}")
        contiguous = np.ascontiguousarray(array)
        header = f"{contiguous.dtype.str}{contiguous.shape[1:]}".encode()
        flat.append((header, contiguous.reshape(batch, -1).view(np.uint8) if contiguous.size else None))
    digests = np.empty(batch, dtype=object)
    for i in range(batch):
        hasher = xxhash.xxh3_128()
        for header, rows in flat:
            hasher.update(header)
            if rows is not None:
                hasher.update(rows[i])
        digests[i] = hasher.hexdigest()
    return digests
