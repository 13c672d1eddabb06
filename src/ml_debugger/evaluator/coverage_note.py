"""Which datasets an evaluation could not see at its epochs, and what that takes away.

A dataset traced less often than the others (for example the training split every 5 epochs,
evaluated with ``n_epoch="latest"``) has no rows at some evaluated epochs. The evaluation does
not drop it silently: the Result lists it, with what is unavailable because of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

MISSING_COLUMNS = ("dataset", "missing_epochs", "committed_epochs", "unavailable")


def missing_datasets(
    committed: Mapping[str, Sequence[int]],
    epochs: Sequence[int],
    samples: pd.DataFrame,
    reference_dataset: str,
) -> list[dict]:
    """One note per dataset without rows at some of the evaluated ``epochs``.

    Args:
        committed: the committed epochs of each dataset of the model version.
        epochs: the epochs the evaluation covers.
        samples: the evaluated units (``dataset``, ``epoch``).
        reference_dataset: the split that defines coverage; it gets a note even when it was
            never traced, since every other split then loses its coverage reference.

    Returns:
        JSON-serialisable dicts with ``MISSING_COLUMNS``, sorted by dataset.
    """
    present = samples.groupby("dataset")["epoch"].unique().to_dict()
    datasets = set(committed) | {reference_dataset}
    notes = []
    for dataset in sorted(datasets):
        seen = {int(e) for e in present.get(dataset, [])}
        missing = sorted(int(e) for e in epochs if int(e) not in seen)
        if not missing:
            continue
        notes.append(
            {
                "dataset": dataset,
                "missing_epochs": missing,
                "committed_epochs": sorted(int(e) for e in committed.get(dataset, [])),
                "unavailable": _unavailable(dataset, reference_dataset),
            }
        )
    return notes


def _unavailable(dataset: str, reference_dataset: str) -> str:
    if dataset == reference_dataset:
        return (
            f"coverage: without {dataset!r} rows, the signals measured against {dataset!r} "
            "(knn_distance, coverage_percentile and so the out_of_coverage code; for "
            "classification also reference_margin) of every other dataset at these epochs are "
            f"measured within that dataset itself; trace {dataset!r} at these epochs to restore them"
        )
    return f"everything for {dataset!r} at these epochs: no metrics, categories, codes or hotspots"
