import numpy as np
import pandas as pd
import pytest

from ml_debugger.evaluator.analysis.dynamics import DYNAMICS_COLUMNS, training_dynamics


def _history():
    """Rows deliberately out of epoch order; the same input_id in two datasets is two inputs."""
    rows = [
        # dataset, input_id, epoch, label, probabilities
        ("val", "a", 2, 0, [0.6, 0.4, 0.0]),
        ("val", "a", 0, 0, [0.8, 0.2, 0.0]),
        ("val", "a", 1, 0, [0.3, 0.7, 0.0]),
        ("train", "a", 0, 2, [0.5, 0.3, 0.2]),
        ("train", "a", 1, 2, [0.1, 0.2, 0.7]),
        ("train", "a", 2, 2, [0.6, 0.1, 0.3]),
        ("val", "b", 1, 1, [0.2, 0.7, 0.1]),
        ("val", "d", 0, 1, [0.1, 0.9, 0.0]),
        ("val", "d", 5, 1, [0.6, 0.4, 0.0]),
    ]
    samples = pd.DataFrame(
        [r[:4] for r in rows], columns=["dataset", "input_id", "epoch", "label"]
    )
    proba = np.array([r[4] for r in rows])
    correct = proba.argmax(axis=1) == samples["label"].to_numpy()
    return samples, proba, correct


def test_hand_computed_three_epoch_history():
    samples, proba, correct = _history()
    table = training_dynamics(samples, proba, correct)
    assert list(table.columns) == list(DYNAMICS_COLUMNS)
    assert table["n_epochs_seen"].dtype == np.int64

    # val/a, label 0: epochs 0, 1, 2 -> p[label] 0.8, 0.3, 0.6; correct, wrong, correct.
    mean_a = (0.8 + 0.3 + 0.6) / 3
    val_a = table.iloc[[0, 1, 2]]
    for _, row in val_a.iterrows():
        assert row["n_epochs_seen"] == 3
        assert row["gold_proba_mean"] == pytest.approx(mean_a)
        assert row["gold_proba_std"] == pytest.approx(
            np.sqrt(((0.8 - mean_a) ** 2 + (0.3 - mean_a) ** 2 + (0.6 - mean_a) ** 2) / 3)
        )
        assert row["correct_fraction"] == pytest.approx(2 / 3)
        assert row["flips"] == 2  # correct -> wrong -> correct
        assert row["forgetting_events"] == 1  # only correct -> wrong counts
        assert row["aum"] == pytest.approx(np.mean(np.log([0.8 / 0.2, 0.3 / 0.7, 0.6 / 0.4])))

    # train/a, label 2 of 3 classes: the margin is against the largest *other* class.
    train_a = table.iloc[3]
    assert train_a["correct_fraction"] == pytest.approx(1 / 3)  # wrong, correct, wrong
    assert train_a["flips"] == 2
    assert train_a["forgetting_events"] == 1
    assert train_a["aum"] == pytest.approx(np.mean(np.log([0.2 / 0.5, 0.7 / 0.2, 0.3 / 0.6])))
    assert train_a["gold_proba_mean"] == pytest.approx(0.4)

    # val/d: epochs 0 and 5 are consecutive traced epochs.
    val_d = table.iloc[8]
    assert val_d["n_epochs_seen"] == 2
    assert (val_d["flips"], val_d["forgetting_events"]) == (1, 1)
    assert val_d["gold_proba_std"] == pytest.approx(0.25)

    # val/b: a single epoch -> NaN everywhere but n_epochs_seen.
    val_b = table.iloc[6]
    assert val_b["n_epochs_seen"] == 1
    assert val_b[list(DYNAMICS_COLUMNS[1:])].isna().all()


def test_values_are_broadcast_to_every_row_of_an_input():
    samples, proba, correct = _history()
    table = training_dynamics(samples, proba, correct)
    keys = samples[["dataset", "input_id"]].agg("/".join, axis=1)
    per_input = table.groupby(keys.to_numpy()).nunique(dropna=False)
    assert (per_input <= 1).all().all()


def test_matches_a_plain_loop_on_random_histories():
    rng = np.random.default_rng(0)
    n_inputs, n_classes = 60, 4
    frames = []
    for epoch in range(4):
        keep = rng.random(n_inputs) < 0.8  # not every input at every epoch
        frames.append(pd.DataFrame({
            "dataset": "val", "input_id": [f"x{i}" for i in np.flatnonzero(keep)], "epoch": epoch,
            "label": np.flatnonzero(keep) % n_classes,
        }))
    samples = pd.concat(frames, ignore_index=True).sample(frac=1, random_state=0)
    samples = samples.reset_index(drop=True)
    proba = rng.dirichlet(np.ones(n_classes), size=len(samples))
    correct = proba.argmax(1) == samples["label"].to_numpy()
    table = training_dynamics(samples, proba, correct)
    for input_id, rows in samples.groupby("input_id").groups.items():
        rows = samples.loc[rows].sort_values("epoch").index
        got = table.loc[rows[0]]
        ok = correct[rows]
        if len(rows) == 1:
            assert np.isnan(got["flips"])
            continue
        gold = proba[rows, samples.loc[rows, "label"]]
        assert got["flips"] == np.sum(ok[1:] != ok[:-1])
        assert got["forgetting_events"] == np.sum(ok[:-1] & ~ok[1:])
        assert got["gold_proba_std"] == pytest.approx(np.std(gold))
        others = proba[rows].copy()
        others[np.arange(len(rows)), samples.loc[rows, "label"]] = 0
        assert got["aum"] == pytest.approx(np.mean(np.log(gold) - np.log(others.max(1))))
