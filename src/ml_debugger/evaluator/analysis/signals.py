"""Every per-unit signal of a classification evaluation, in one table."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ml_debugger.evaluator._data import EvalData
from ml_debugger.evaluator.analysis.basic import BASIC_COLUMNS, basic_signals
from ml_debugger.evaluator.analysis.dynamics import DYNAMICS_COLUMNS, training_dynamics
from ml_debugger.evaluator.analysis.error_proba import cross_fitted_error_proba
from ml_debugger.evaluator.analysis.label_issues import find_label_issues
from ml_debugger.evaluator.analysis.neighbors import (
    NEIGHBOR_COLUMNS,
    embed_per_epoch,
    neighbor_signals,
)

logger = logging.getLogger(__name__)

SIGNAL_COLUMNS = (
    *BASIC_COLUMNS,
    *NEIGHBOR_COLUMNS,
    "label_issue",
    "label_quality",
    "suggested_label",
    "error_proba",
    *DYNAMICS_COLUMNS,
)


@dataclass(frozen=True)
class Signals:
    """The per-unit signals of an evaluation.

    Attributes:
        table: index ``data.samples.index``, the columns of ``SIGNAL_COLUMNS``.
        embedding: ``(n, m)`` reduced, standardised features used for the neighbours, or
            ``None`` when no features were traced.
    """

    table: pd.DataFrame
    embedding: np.ndarray | None


def compute_signals(
    data: EvalData,
    *,
    reference_dataset: str = "train",
    k_neighbors: int = 10,
    n_components: int = 64,
    n_folds: int = 5,
    random_state: int = 0,
    progress: bool = False,
) -> Signals:
    """Compute every signal of ``SIGNAL_COLUMNS`` for each unit of ``data``.

    Args:
        data: the de-duplicated traces.
        reference_dataset: the split whose features define coverage (the training split).
        k_neighbors: neighbours per unit for the feature-space signals.
        n_components: dimensions kept by PCA before the neighbour search.
        n_folds: folds of the cross-fitted ``error_proba``.
        random_state: seed of the PCA, the neighbour pools and the folds.
        progress: show a progress bar.
    """
    samples = data.samples
    groups = samples.groupby(["dataset", "epoch"], sort=True).indices
    has_features = data.features is not None and data.features.shape[1] > 0
    steps = 3 + len(groups) * (2 if has_features else 1) + samples["dataset"].nunique()
    with tqdm(total=steps, desc="signals", disable=not progress, leave=False) as bar:
        table = basic_signals(data.probabilities, data.labels).set_index(samples.index)
        correct = table["correct"].to_numpy()
        bar.update()

        embedding = None
        if has_features:
            bar.set_postfix_str("neighbours")
            embedding = embed_per_epoch(data.features, samples, n_components, random_state)
            bar.update()
            neighbors = neighbor_signals(
                embedding, samples, correct, table["margin"].to_numpy(),
                reference_dataset=reference_dataset, k_neighbors=k_neighbors,
                random_state=random_state, on_group=bar.update,
            )
        else:
            neighbors = pd.DataFrame(np.nan, index=samples.index, columns=list(NEIGHBOR_COLUMNS))
            bar.update()
        table = table.join(neighbors)

        bar.set_postfix_str("label issues")
        issues = []
        for rows in groups.values():
            found = find_label_issues(data.labels[rows], data.probabilities[rows])
            issues.append(found.set_index(samples.index[rows]))
            bar.update()
        if not issues:  # no units at all
            issues.append(find_label_issues(data.labels, data.probabilities))
        table = table.join(pd.concat(issues))

        bar.set_postfix_str("error model")
        error_proba = np.empty(len(samples))
        for _, rows in samples.groupby("dataset", sort=True).indices.items():
            error_proba[rows] = cross_fitted_error_proba(
                table.iloc[rows], ~correct[rows], samples["input_id"].to_numpy()[rows],
                n_folds=n_folds, random_state=random_state,
            )
            bar.update()
        table["error_proba"] = error_proba

        bar.set_postfix_str("dynamics")
        table = table.join(training_dynamics(samples, data.probabilities, correct))
        bar.update()
    return Signals(table=table.loc[:, list(SIGNAL_COLUMNS)], embedding=embedding)
