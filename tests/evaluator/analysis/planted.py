"""Generated classification traces with planted, known problems.

A Gaussian mixture in ``n_features`` dims: class ``c`` has mean ``separation / sqrt(2) * e_c`` (every
pair of class means is ``separation`` apart), unit variance along the ``n_classes`` class axes and
``nuisance_std`` along the others (features that carry no class information, as most of a
network's penultimate features do for any given pair of classes). The simulated classifier
outputs the Bayes posterior of the mixture, then these problems are planted (all disjoint):

- label noise: a share of the inputs of every split get another label (features and
  probabilities keep the true class): a random other class (``noise="symmetric"``) or the next
  class, ``(y + 1) % n_classes`` (``noise="class_conditional"``);
- a slice: a tight blob of class ``0`` inputs away from every class (offset by ``2 * separation``
  along a dimension no class mean uses) on which the model predicts class ``1`` with a moderate
  confidence; ``slice_error_rate`` of it is wrong, in every split;
- confident errors: validation inputs (features and label of their class) that the model
  assigns to another class with probability 0.9-0.98;
- instability (with 3+ epochs): validation inputs that are correct at every epoch but the
  middle ones, where the model predicts another class;
- leakage: validation inputs that are exact copies of training inputs (same input_hash);
- conflicts: validation inputs traced twice (same input_hash) with two different labels.

With several epochs every input is traced at each epoch with the same features and, except for
the unstable inputs, the same probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml_debugger.evaluator._data import EvalData


@dataclass(frozen=True)
class Planted:
    """The traces and, per row, the planted truth."""

    data: EvalData
    true_label: np.ndarray
    label_noise: np.ndarray
    slice: np.ndarray
    confident_error: np.ndarray
    unstable: np.ndarray
    leaked: np.ndarray
    conflicting: np.ndarray


def make_planted(
    *,
    n_train: int = 1500,
    n_val: int = 1500,
    n_classes: int = 5,
    n_features: int = 8,
    separation: float = 5.0,
    nuisance_std: float = 0.3,
    n_epochs: int = 1,
    label_noise: float = 0.04,
    noise: str = "symmetric",
    slice_fraction: float = 0.06,
    slice_error_rate: float = 0.9,
    n_confident: int = 40,
    n_unstable: int = 60,
    n_leaked: int = 20,
    n_conflicts: int = 10,
    with_features: bool = True,
    seed: int = 0,
) -> Planted:
    """Generate traces with the planted problems described in the module docstring."""
    if n_features <= n_classes:
        raise ValueError("n_features must exceed n_classes (one spare dimension for the slice)")
    rng = np.random.default_rng(seed)
    means = np.zeros((n_classes, n_features))
    means[np.arange(n_classes), np.arange(n_classes)] = separation / np.sqrt(2.0)

    n_base = n_train + n_val
    dataset = np.array(["train"] * n_train + ["val"] * n_val, dtype=object)
    is_val = dataset == "val"
    y = rng.integers(0, n_classes, n_base)
    scale = np.full(n_features, nuisance_std)
    scale[:n_classes] = 1.0
    x = means[y] + rng.normal(size=(n_base, n_features)) * scale
    proba = _posterior(x, means)

    # Disjoint role assignment.
    free = np.ones(n_base, dtype=bool)

    def take(candidates: np.ndarray, k: int) -> np.ndarray:
        pool = np.flatnonzero(candidates & free)
        chosen = rng.choice(pool, size=min(k, len(pool)), replace=False)
        free[chosen] = False
        mask = np.zeros(n_base, dtype=bool)
        mask[chosen] = True
        return mask

    slice_mask = take(y == 0, int(slice_fraction * n_base))
    center = means[0].copy()
    center[n_classes] = 2.0 * separation
    x[slice_mask] = center + 0.25 * scale * rng.normal(size=(slice_mask.sum(), n_features))
    proba[slice_mask] = _slice_proba(rng, int(slice_mask.sum()), n_classes, slice_error_rate)

    correct_now = proba.argmax(axis=1) == y
    confident = take(is_val & correct_now, n_confident)
    proba[confident] = _confident_proba(rng, y[confident], n_classes)
    unstable = take(is_val & correct_now & (proba.max(axis=1) > 0.9), n_unstable)
    leaked_src = take(~is_val & correct_now, n_leaked)
    leaked_dst = take(is_val, int(leaked_src.sum()))
    conflict = take(is_val & correct_now, n_conflicts)
    noisy = take(np.ones(n_base, dtype=bool), int(label_noise * n_base))

    labels = y.copy()
    shift = rng.integers(1, n_classes, noisy.sum()) if noise == "symmetric" else 1
    labels[noisy] = (y[noisy] + shift) % n_classes
    hashes = np.array([f"h{i:06d}" for i in range(n_base)], dtype=object)
    # Leakage: the val input becomes an exact copy of a training input.
    src, dst = np.flatnonzero(leaked_src), np.flatnonzero(leaked_dst)
    x[dst], proba[dst], labels[dst], y[dst], hashes[dst] = x[src], proba[src], labels[src], y[src], hashes[src]

    # Conflicts: each conflicting input is traced a second time with another label.
    conf_idx = np.flatnonzero(conflict)
    base_rows = np.concatenate([np.arange(n_base), conf_idx])
    row_labels = np.concatenate([labels, (labels[conf_idx] + 1) % n_classes])
    input_ids = np.array([f"{dataset[i]}-{i}" for i in range(n_base)] + [f"val-dup-{i}" for i in conf_idx], dtype=object)
    conflicting = np.concatenate([conflict, conflict[conf_idx]])
    leaked = np.concatenate([leaked_src | leaked_dst, np.zeros(len(conf_idx), dtype=bool)])

    frames, probas, feats = [], [], []
    middle = set(range(1, n_epochs - 1))
    for epoch in range(n_epochs):
        p = proba[base_rows].copy()
        if epoch in middle:
            rows = np.flatnonzero(unstable[base_rows])
            p[rows] = _confident_proba(rng, y[base_rows][rows], n_classes, low=0.55, high=0.7)
        frames.append(
            pd.DataFrame(
                {
                    "input_id": input_ids,
                    "input_hash": hashes[base_rows],
                    "dataset": dataset[base_rows],
                    "epoch": np.full(len(base_rows), epoch, dtype=np.int64),
                    "global_step": pd.array([100 * (epoch + 1)] * len(base_rows), dtype="Int64"),
                    "label": row_labels.astype(np.int64),
                }
            )
        )
        probas.append(p)
        feats.append(x[base_rows].astype(np.float32))
    samples = pd.concat(frames, ignore_index=True)
    samples["input_id"] = samples["input_id"].astype(str)
    samples["input_hash"] = samples["input_hash"].astype(str)
    samples["dataset"] = samples["dataset"].astype(str)

    def per_row(mask: np.ndarray) -> np.ndarray:
        return np.tile(mask, n_epochs)

    data = EvalData(
        samples=samples,
        probabilities=np.vstack(probas),
        features=np.vstack(feats) if with_features else None,
    )
    return Planted(
        data=data,
        true_label=np.tile(y[base_rows], n_epochs),
        label_noise=per_row(noisy[base_rows] & (row_labels != y[base_rows])),
        slice=per_row(slice_mask[base_rows]),
        confident_error=per_row(confident[base_rows]),
        unstable=per_row(unstable[base_rows]) if n_epochs >= 3 else np.zeros(len(samples), dtype=bool),
        leaked=per_row(leaked),
        conflicting=per_row(conflicting),
    )


@dataclass(frozen=True)
class SliceCase:
    """A split with scattered errors and one planted slice of systematic errors."""

    samples: pd.DataFrame
    prediction: np.ndarray
    embedding: np.ndarray
    slice: np.ndarray


def make_slice_case(
    scattered_error_rate: float,
    *,
    n: int = 4000,
    n_classes: int = 5,
    n_features: int = 8,
    separation: float = 6.0,
    slice_fraction: float = 0.05,
    slice_error_rate: float = 0.95,
    dataset: str = "val",
    epoch: int = 0,
    seed: int = 0,
) -> SliceCase:
    """Units of a Gaussian mixture (as `make_planted`) whose predictions are wrong at random with
    ``scattered_error_rate`` everywhere, except in a slice: a tight blob of class ``0`` inputs
    away from every class, predicted as class ``1`` with ``slice_error_rate``."""
    rng = np.random.default_rng(seed)
    means = np.zeros((n_classes, n_features))
    means[np.arange(n_classes), np.arange(n_classes)] = separation / np.sqrt(2.0)
    labels = rng.integers(0, n_classes, n)
    x = means[labels] + rng.normal(size=(n, n_features))
    in_slice = np.zeros(n, dtype=bool)
    in_slice[rng.choice(np.flatnonzero(labels == 0), int(slice_fraction * n), replace=False)] = True
    center = means[0].copy()
    center[n_classes] = 2.0 * separation
    x[in_slice] = center + 0.25 * rng.normal(size=(int(in_slice.sum()), n_features))
    wrong = np.where(in_slice, rng.random(n) < slice_error_rate, rng.random(n) < scattered_error_rate)
    other = (labels + rng.integers(1, n_classes, n)) % n_classes
    prediction = np.where(wrong, np.where(in_slice, 1, other), labels)
    samples = pd.DataFrame(
        {
            "input_id": [f"{dataset}-{epoch}-{i}" for i in range(n)],
            "dataset": dataset,
            "epoch": np.full(n, epoch, dtype=np.int64),
            "label": labels.astype(np.int64),
        }
    )
    return SliceCase(samples=samples, prediction=prediction, embedding=x, slice=in_slice)


def _posterior(x: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Bayes posterior of equiprobable classes; only the class axes differ between the classes."""
    n_classes = len(means)
    logits = -0.5 * ((x[:, None, :n_classes] - means[None, :, :n_classes]) ** 2).sum(axis=2)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def _spread(rng: np.random.Generator, top: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows with probability ``top`` on column 0 and the rest split at random over the others."""
    rest = rng.dirichlet(np.ones(n_classes - 1), size=len(top)) * (1.0 - top)[:, None]
    return np.column_stack([top, rest])


def _confident_proba(
    rng: np.random.Generator, y: np.ndarray, n_classes: int, low: float = 0.9, high: float = 0.98
) -> np.ndarray:
    """Probabilities putting ``low..high`` on a random class other than ``y``."""
    wrong = (y + rng.integers(1, n_classes, len(y))) % n_classes
    rows = _spread(rng, rng.uniform(low, high, len(y)), n_classes)
    return _place(rows, wrong, n_classes)


def _slice_proba(rng: np.random.Generator, n: int, n_classes: int, error_rate: float) -> np.ndarray:
    """Class 1 wins with 0.5-0.7 (else class 0 wins with it); the runner-up gets most of the rest."""
    top = rng.uniform(0.5, 0.7, n)
    second = (1.0 - top) * 0.8
    p = np.full((n, n_classes), 0.0)
    p[:, 2:] = ((1.0 - top - second) / (n_classes - 2))[:, None]
    wins_wrong = rng.random(n) < error_rate
    p[:, 1] = np.where(wins_wrong, top, second)
    p[:, 0] = np.where(wins_wrong, second, top)
    return p


def _place(rows: np.ndarray, column: np.ndarray, n_classes: int) -> np.ndarray:
    """Move column 0 of each row to ``column`` (rotating the others), keeping the row's values."""
    out = np.empty_like(rows)
    for shift in range(n_classes):
        sel = column == shift
        out[sel] = np.roll(rows[sel], shift, axis=1)
    return out


SIGNAL_DEFAULTS = {
    "input_id": "u",
    "input_hash": "",
    "dataset": "val",
    "epoch": 0,
    "label": 0,
    "prediction": 0,
    "correct": True,
    "confidence": 0.95,
    "margin": 0.9,
    "entropy": 0.2,
    "loss": 0.05,
    "gold_proba": 0.95,
    "knn_error_rate": 0.0,
    "knn_label_agreement": 1.0,
    "knn_distance": 1.0,
    "coverage_percentile": 50.0,
    "reference_margin": 0.8,
    "label_issue": False,
    "label_quality": 0.95,
    "suggested_label": 0,
    "error_proba": 0.05,
    "n_epochs_seen": 1,
    "gold_proba_mean": np.nan,
    "gold_proba_std": np.nan,
    "correct_fraction": np.nan,
    "flips": np.nan,
    "forgetting_events": np.nan,
    "aum": np.nan,
    "hotspot_cluster": pd.NA,
}
"""A stable, correct, confident unit inside coverage: the per-unit columns codes and categories read."""


WRONG_DEFAULTS = {
    "confidence": 0.6,
    "margin": 0.4,
    "entropy": 1.0,
    "gold_proba": 0.1,
    "loss": 2.3,
    "error_proba": 0.6,
    "label_quality": 0.1,
}


def unit_table(*rows: dict) -> pd.DataFrame:
    """A per-unit table, one row per dict, each dict overriding ``SIGNAL_DEFAULTS``.

    A wrong unit (``correct=False``) defaults to an unremarkable error (``WRONG_DEFAULTS``: not
    confident, not low-margin, its label not the runner-up) predicting ``label + 1``.
    Unique ``input_id`` / ``input_hash`` are filled in unless given.
    """
    records = []
    for i, overrides in enumerate(rows):
        record = {**SIGNAL_DEFAULTS, "input_id": f"u{i}", "input_hash": f"h{i}"}
        if not overrides.get("correct", True):
            record |= WRONG_DEFAULTS | {"prediction": overrides.get("label", 0) + 1}
        records.append(record | overrides)
    table = pd.DataFrame.from_records(records, columns=list(SIGNAL_DEFAULTS))
    return table.astype(
        {
            "epoch": np.int64,
            "label": np.int64,
            "prediction": np.int64,
            "correct": bool,
            "label_issue": bool,
            "suggested_label": np.int64,
            "n_epochs_seen": np.int64,
            "hotspot_cluster": "Int64",
            **{c: np.float64 for c in ("confidence", "margin", "entropy", "loss", "gold_proba",
                                       "knn_error_rate", "knn_label_agreement", "knn_distance",
                                       "coverage_percentile", "reference_margin", "label_quality", "error_proba",
                                       "gold_proba_mean", "gold_proba_std", "correct_fraction",
                                       "flips", "forgetting_events", "aum")},
        }
    )
