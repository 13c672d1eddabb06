"""A cross-fitted estimate of the probability that each unit is misclassified."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

logger = logging.getLogger(__name__)

ERROR_FEATURES = (
    "confidence",
    "margin",
    "entropy",
    "knn_error_rate",
    "knn_distance",
    "coverage_percentile",
)
"""Signals the error model reads; none of them uses the unit's own label (that gives it away)."""


def cross_fitted_error_proba(
    signals: pd.DataFrame,
    error: np.ndarray,
    groups: np.ndarray,
    *,
    n_folds: int = 5,
    random_state: int = 0,
    features: Sequence[str] = ERROR_FEATURES,
    fallback: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-fold probability that each unit is an error, learned from its ``features`` signals
    (classification: ``ERROR_FEATURES``; another task passes its own).

    Units are split into ``n_folds`` folds by ``group_folds`` (whole ``groups``, the input_ids,
    per fold), so that no unit, and no other epoch of the same input, is scored by a model fitted
    on it. Each fold is scored by gradient-boosted trees (NaN-safe) fitted on the other folds.
    With fewer than ``n_folds`` errors, correct units or groups, ``fallback`` (by default
    ``1 - confidence``) is returned instead; so is it for a fold whose training part holds a
    single outcome.
    """
    error = np.asarray(error, dtype=bool)
    if fallback is None:
        fallback = 1.0 - signals["confidence"].to_numpy(dtype=np.float64)
    n_errors = int(error.sum())
    n_correct = len(error) - n_errors
    if min(n_errors, n_correct, len(pd.unique(groups))) < n_folds:
        logger.info(
            "error_proba is the fallback: %d errors, %d correct units for %d folds",
            n_errors, n_correct, n_folds,
        )
        return fallback
    x = signals.loc[:, list(features)].to_numpy(dtype=np.float32)
    x = x[:, ~np.isnan(x).all(axis=0)]  # e.g. the neighbour signals without features
    fold = group_folds(error, groups, n_folds, random_state)
    out = np.array(fallback, dtype=np.float64)

    def score_fold(k: int) -> None:
        train, test = fold != k, fold == k
        if error[train].all() or not error[train].any():
            logger.info("error_proba: fold %d trains on one outcome; the fallback is used", k)
            return
        out[test] = _model(random_state).fit(x[train], error[train]).predict_proba(x[test])[:, 1]

    # The folds are independent and deterministic: they are fitted side by side on the cores
    # (the trees' histogram work runs without the GIL), one OpenMP thread each, since small
    # trees on a few columns gain nothing from OpenMP threads, which slow down badly when the
    # cores are shared with other work.
    with threadpool_limits(limits=1, user_api="openmp"), ThreadPoolExecutor(_workers(n_folds)) as pool:
        list(pool.map(score_fold, range(n_folds)))
    return out


def _workers(n_folds: int) -> int:
    """Threads for the folds: one per usable core, at most one per fold."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(n_folds, cores))

def group_folds(
    error: np.ndarray, groups: np.ndarray, n_folds: int, random_state: int
) -> np.ndarray:
    """Fold (``0 .. n_folds - 1``) of each unit; all units of a group share one fold.

    Groups are shuffled and dealt to the folds in turn, those holding an error first, so errors
    spread evenly: a fast ``StratifiedGroupKFold(shuffle=True)`` for many small groups.
    """
    codes, _ = pd.factorize(np.asarray(groups))
    group_has_error = np.bincount(codes, weights=error) > 0
    shuffle = np.random.default_rng(random_state).random(len(group_has_error))
    order = np.lexsort((shuffle, ~group_has_error))
    group_fold = np.empty(len(order), dtype=np.int64)
    group_fold[order] = np.arange(len(order)) % n_folds
    return group_fold[codes]


def _model(random_state: int) -> HistGradientBoostingClassifier:
    """Small, regularised boosted trees: the inputs are a few signals.

    Early stopping (on 10% of the training part) is on above 10 000 units, as sklearn's "auto".
    """
    return HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.1,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping="auto",
        random_state=random_state,
    )
