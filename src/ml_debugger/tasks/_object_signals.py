"""Signals that the detection tasks' object-level analyses share.

A detection unit table has one row per object (a ground-truth box) or false positive, with
``dataset, epoch, input_id, unit_id, unit_type`` (``object`` / ``false_positive``), ``label``,
``prediction``, ``correct``, ``error_type`` and ``score``. On it:

- the neighbour signals of the classification analysis over the units' features;
- ``error_proba``: for an object, the cross-fitted probability that it is missed, from a
  task's own list of signals; 1 for a false positive (an error by definition);
- ``n_epochs_seen``, ``correct_fraction``, ``flips``, ``forgetting_events``: an object's history
  over the traced epochs (found, then lost, is a forgetting event); NaN for false positives and
  with a single epoch;
- ``recurrence``: in how many evaluated epochs an error was made (the same error type with the
  same predicted class for an object; a task says how a false positive recurs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ml_debugger.evaluator.analysis.error_proba import cross_fitted_error_proba
from ml_debugger.evaluator.analysis.neighbors import NEIGHBOR_COLUMNS, embed_per_epoch, neighbor_signals

DYNAMICS_COLUMNS = ("n_epochs_seen", "correct_fraction", "flips", "forgetting_events")
DEFAULT_OPERATING_SCORE = 0.5
"""The operating score when no detection of a dataset and epoch is right (F1 is 0 everywhere)."""


def f1_operating_score(scores: np.ndarray, true_positive: np.ndarray, n_objects: int) -> float:
    """The score that maximises F1 when detections scoring at least it are kept (ties: the higher score).

    ``scores`` and ``true_positive`` describe the detections that count; ``n_objects`` the
    objects to find; ``DEFAULT_OPERATING_SCORE`` when nothing is right. F1 at a threshold ``s`` is
    ``2 TP(s) / (made(s) + n_objects)``. Lowering ``s`` past a score without a true positive
    only adds false positives, so the maximum lies at the score of a true positive: only those
    are evaluated, with counts read off the sorted scores.
    """
    scores = np.asarray(scores, dtype=np.float64)
    hit_scores = np.sort(scores[np.asarray(true_positive, dtype=bool)])
    if n_objects == 0 or len(hit_scores) == 0:
        return DEFAULT_OPERATING_SCORE
    candidates = np.unique(hit_scores)[::-1]  # distinct true-positive scores, highest first
    tp = len(hit_scores) - np.searchsorted(hit_scores, candidates, side="left")
    made = len(scores) - np.searchsorted(np.sort(scores), candidates, side="left")
    return float(candidates[int(np.argmax(2 * tp / (made + n_objects)))])


def add_object_signals(
    table: pd.DataFrame,
    features: np.ndarray | None,
    config: Any,
    *,
    error_features: Sequence[str],
    false_positive_recurrence: Callable[[pd.DataFrame], np.ndarray],
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """``table`` with the shared signal columns, and the feature embedding (None without features).

    ``config`` has the neighbour settings (``n_components``, ``random_state``,
    ``reference_dataset``, ``k_neighbors``, ``n_folds``); ``false_positive_recurrence`` gives the
    recurrence of the false-positive rows it is passed (called with two or more epochs only).
    """
    correct = table["correct"].to_numpy(dtype=bool)
    embedding = None
    if features is not None and len(table):
        embedding = embed_per_epoch(features, table, config.n_components, config.random_state)
        neighbors = neighbor_signals(
            embedding, table, correct, reference_dataset=config.reference_dataset,
            k_neighbors=config.k_neighbors, random_state=config.random_state,
        )
    else:
        neighbors = pd.DataFrame(np.nan, index=table.index, columns=list(NEIGHBOR_COLUMNS))
    # no class probabilities, so no reference margin; same index: a join without the merge machinery
    table = pd.concat([table, neighbors.drop(columns="reference_margin")], axis=1)
    table["error_proba"] = object_error_proba(table, config, error_features)
    table = pd.concat([table, object_dynamics(table)], axis=1)
    recurrence = object_recurrence(table)
    fps = np.flatnonzero((table["unit_type"] == "false_positive").to_numpy())
    if len(fps) and table["epoch"].nunique() > 1:
        recurrence[fps] = false_positive_recurrence(table.iloc[fps])
    table["recurrence"] = recurrence
    return table, embedding


def object_error_proba(table: pd.DataFrame, config: Any, features: Sequence[str]) -> np.ndarray:
    """Cross-fitted P(missed) of each object from ``features`` (per dataset; fallback ``1 - score``); 1 for false positives."""
    out = np.ones(len(table))
    objects = np.flatnonzero(table["unit_type"].to_numpy() == "object")
    signals = table[list(features)]  # what the model reads, and no other column
    correct = table["correct"].to_numpy(dtype=bool)
    input_id = table["input_id"].to_numpy()
    score = table["score"].to_numpy(dtype=np.float64)
    dataset = table["dataset"].iloc[objects].reset_index(drop=True)
    for rows in dataset.groupby(dataset, sort=True).indices.values():
        positions = objects[rows]
        out[positions] = cross_fitted_error_proba(
            signals.iloc[positions], ~correct[positions], input_id[positions],
            n_folds=config.n_folds, random_state=config.random_state, features=features,
            fallback=1.0 - score[positions],
        )
    return out


def object_dynamics(table: pd.DataFrame) -> pd.DataFrame:
    """``DYNAMICS_COLUMNS`` of each object over its traced epochs (see the module doc)."""
    out = pd.DataFrame(np.nan, index=table.index, columns=list(DYNAMICS_COLUMNS))
    is_object = (table["unit_type"] == "object").to_numpy()
    if not is_object.any() or table["epoch"][is_object].nunique() < 2:
        return out
    ordered = table.loc[is_object, ["dataset", "input_id", "unit_id", "epoch", "correct"]].sort_values("epoch", kind="stable")
    keys = [ordered[k] for k in ("dataset", "input_id", "unit_id")]
    correct = ordered["correct"].astype(bool)
    previous = correct.groupby(keys, sort=False).shift()
    has_previous = previous.notna()
    changed = has_previous & (previous.astype("boolean") != correct)
    forgot = has_previous & previous.astype("boolean").fillna(False) & ~correct
    grouped = pd.DataFrame({
        "seen": 1, "correct": correct.astype(float), "changed": changed.astype(float), "forgot": forgot.astype(float),
    }, index=ordered.index).groupby(keys, sort=False)
    seen = grouped["seen"].transform("sum")
    out.loc[ordered.index, "n_epochs_seen"] = seen
    several = seen >= 2
    out.loc[ordered.index[several], "correct_fraction"] = grouped["correct"].transform("mean")[several]
    out.loc[ordered.index[several], "flips"] = grouped["changed"].transform("sum")[several]
    out.loc[ordered.index[several], "forgetting_events"] = grouped["forgot"].transform("sum")[several]
    return out


def object_recurrence(table: pd.DataFrame) -> np.ndarray:
    """Evaluated epochs in which each missed object had the same error type and predicted class
    (0 for correct units, 1 for false positives: the task fills those in)."""
    out = np.where(table["correct"].to_numpy(dtype=bool), 0, 1).astype(np.int64)
    missed = (table["unit_type"] == "object").to_numpy() & ~table["correct"].to_numpy(dtype=bool)
    if missed.any():
        keys = ["dataset", "input_id", "unit_id", "error_type", "prediction"]
        errors = table.loc[missed, [*keys, "epoch"]]
        out[missed] = errors.groupby(keys, sort=False)["epoch"].transform("nunique").to_numpy()
    return out


def count(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Units per combination of ``keys`` (a tidy heatmap table)."""
    counts = table.groupby(keys, sort=True, observed=True).size().rename("count").reset_index()
    return counts.astype({"epoch": np.int64, "count": np.int64})
