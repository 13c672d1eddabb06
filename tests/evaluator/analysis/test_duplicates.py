import numpy as np
import pandas as pd

from ml_debugger.evaluator.analysis.duplicates import conflicting_label_mask, leaked_mask

from .planted import make_planted


def _samples(rows):
    return pd.DataFrame(rows, columns=["input_hash", "dataset", "epoch", "label"])


def test_leakage_is_the_same_hash_in_two_datasets_not_two_epochs():
    samples = _samples(
        [
            ("a", "train", 0, 1),
            ("a", "val", 0, 1),  # leaked
            ("b", "val", 0, 2),
            ("b", "val", 1, 2),  # same input, next epoch: not a duplicate
            ("", "train", 0, 0),
            ("", "val", 0, 0),  # unknown hash: never a duplicate
            ("c", "test", 3, 0),
            ("c", "train", 0, 0),  # leaked, any splits and epochs
        ]
    )
    np.testing.assert_array_equal(
        leaked_mask(samples), [True, True, False, False, False, False, True, True]
    )


def test_conflicts_are_the_same_hash_with_different_labels_anywhere():
    samples = _samples(
        [
            ("a", "val", 0, 1),
            ("a", "val", 0, 2),  # conflict inside one split
            ("b", "train", 0, 3),
            ("b", "val", 0, 4),  # conflict across splits
            ("c", "train", 0, 5),
            ("c", "val", 0, 5),  # leak, same label: no conflict
            ("", "val", 0, 1),
            ("", "val", 0, 2),
        ]
    )
    np.testing.assert_array_equal(
        conflicting_label_mask(samples), [True, True, True, True, False, False, False, False]
    )


def test_missing_hashes_and_empty_tables():
    samples = _samples([(None, "train", 0, 1), (None, "val", 0, 2)])
    assert not leaked_mask(samples).any()
    assert not conflicting_label_mask(samples).any()
    assert leaked_mask(_samples([])).shape == (0,)


def test_planted_duplicates_are_found_exactly():
    planted = make_planted(n_train=300, n_val=300, n_epochs=3, n_unstable=0, seed=5)
    samples = planted.data.samples
    np.testing.assert_array_equal(leaked_mask(samples), planted.leaked)
    np.testing.assert_array_equal(conflicting_label_mask(samples), planted.conflicting)
    assert planted.leaked.sum() == 2 * 20 * 3 and planted.conflicting.sum() == 2 * 10 * 3
