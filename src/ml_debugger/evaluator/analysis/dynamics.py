"""Training dynamics: how each input's prediction evolves over the traced epochs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_debugger.evaluator.analysis.basic import PROBA_FLOOR

DYNAMICS_COLUMNS = (
    "n_epochs_seen",
    "gold_proba_mean",
    "gold_proba_std",
    "correct_fraction",
    "flips",
    "forgetting_events",
    "aum",
)


def training_dynamics(
    samples: pd.DataFrame, probabilities: np.ndarray, correct: np.ndarray
) -> pd.DataFrame:
    """Per ``(dataset, input_id)``, summarise the traced epochs and broadcast to each of its rows.

    Args:
        samples: ``dataset``, ``input_id``, ``epoch`` and ``label`` of each unit.
        probabilities: ``(n, n_classes)`` predicted probabilities.
        correct: ``(n,)`` whether each unit is predicted as its label.

    Columns (see ``DYNAMICS_COLUMNS``): ``n_epochs_seen`` epochs traced for the input;
    ``gold_proba_mean`` / ``gold_proba_std`` (population std) of ``p[label]``; ``correct_fraction``;
    ``flips``, the number of correctness changes between consecutive traced epochs;
    ``forgetting_events``, the correct -> incorrect transitions; ``aum``, the mean over epochs of
    ``log p[label] - max_{c != label} log p[c]`` (area under the margin). Every column but
    ``n_epochs_seen`` is NaN for an input traced at a single epoch.
    """
    n = len(samples)
    labels = samples["label"].to_numpy(dtype=np.int64)
    group = samples.groupby(["dataset", "input_id"], sort=False).ngroup().to_numpy()
    order = np.lexsort((samples["epoch"].to_numpy(), group))
    n_groups = int(group.max()) + 1 if n else 0

    gold = probabilities[np.arange(n), labels]
    seen = np.bincount(group, minlength=n_groups)
    def group_mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(group, values, n_groups) / np.maximum(seen, 1)

    mean = group_mean(gold)
    variance = group_mean((gold - mean[group]) ** 2)
    correct_fraction = group_mean(correct.astype(np.float64))

    sorted_group, sorted_correct = group[order], correct[order]
    same = sorted_group[1:] == sorted_group[:-1]
    changed = same & (sorted_correct[1:] != sorted_correct[:-1])
    forgot = same & sorted_correct[:-1] & ~sorted_correct[1:]
    flips = np.bincount(sorted_group[1:], changed, n_groups)
    forgetting = np.bincount(sorted_group[1:], forgot, n_groups)

    other = probabilities.copy()
    other[np.arange(n), labels] = -np.inf
    margin = np.log(np.clip(gold, PROBA_FLOOR, None)) - np.log(
        np.clip(other.max(axis=1, initial=-np.inf), PROBA_FLOOR, None)
    )
    aum = group_mean(margin)

    single = seen[group] < 2
    table = pd.DataFrame(
        {
            "n_epochs_seen": seen[group].astype(np.int64),
            "gold_proba_mean": mean[group],
            "gold_proba_std": np.sqrt(variance)[group],
            "correct_fraction": correct_fraction[group],
            "flips": flips[group].astype(np.float64),
            "forgetting_events": forgetting[group].astype(np.float64),
            "aum": aum[group],
        },
        index=samples.index,
    )
    table.loc[single, list(DYNAMICS_COLUMNS[1:])] = np.nan
    return table

