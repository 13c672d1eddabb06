from __future__ import annotations

import numpy as np
import pytest

from ml_debugger.core import hash_samples


def test_same_content_same_hash_and_any_change_differs() -> None:
    x = np.random.default_rng(0).normal(size=(5, 3, 4, 4)).astype(np.float32)
    first = hash_samples([x])
    assert len(set(first)) == 5 and all(len(h) == 32 for h in first)
    np.testing.assert_array_equal(first, hash_samples([x.copy()]))
    y = x.copy()
    y[2, 0, 0, 0] += 1e-3
    changed = hash_samples([y])
    assert [a == b for a, b in zip(first, changed)] == [True, True, False, True, True]


def test_dtype_shape_and_all_inputs_are_covered() -> None:
    x = np.zeros((2, 4), dtype=np.float32)
    assert hash_samples([x])[0] != hash_samples([x.view(np.int32)])[0]
    assert hash_samples([x])[0] != hash_samples([x.reshape(2, 2, 2)])[0]
    mask = np.ones((2, 3), dtype=np.int64)
    assert hash_samples([x, mask])[0] != hash_samples([x])[0]
    assert hash_samples([x[:, ::2]])[0] == hash_samples([np.ascontiguousarray(x[:, ::2])])[0]


def test_batch_sizes_must_agree() -> None:
    with pytest.raises(ValueError, match="batch size"):
        hash_samples([np.zeros((2, 3)), np.zeros((3, 3))])
