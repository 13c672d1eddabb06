"""The Hugging Face Trainer callback in real (tiny, offline) runs: strategies, ids, datasets, failures."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
import torch

from ml_debugger.exceptions import WriterError
from ml_debugger.integrations.transformers import (
    MLDebuggerCallback,
    dataset_type_of,
    epoch_index,
)
from ml_debugger.store import LocalStore

N_TRAIN, N_VAL, SEQ = 48, 27, 6


class Tokens(torch.utils.data.Dataset):
    """Fixed-length random token sequences; the label is whether token 5 appears; ``uid`` is extra."""

    def __init__(self, size: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.ids = rng.integers(4, 12, size=(size, SEQ))
        self.labels = (self.ids == 5).any(axis=1).astype(int)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i].tolist(), "attention_mask": [1] * SEQ, "label": int(self.labels[i]), "uid": f"u{i}"}


def tiny_bert() -> transformers.PreTrainedModel:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=12, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def collate(items: list[dict]) -> dict:
    """A collator that, like Trainer's RemoveColumnsCollator, would choke on string columns it kept."""
    return {
        "input_ids": torch.tensor([i["input_ids"] for i in items]),
        "attention_mask": torch.tensor([i["attention_mask"] for i in items]),
        "labels": torch.tensor([i["label"] for i in items]),
    }


def trainer_with(callback, tmp_path: Path, *, eval_dataset=None, train_dataset=None, **arguments) -> transformers.Trainer:
    defaults = {
        "output_dir": str(tmp_path / "out"), "num_train_epochs": 2, "per_device_train_batch_size": 16,
        "per_device_eval_batch_size": 10, "eval_strategy": "epoch", "save_strategy": "no", "report_to": [],
        "use_cpu": True, "logging_strategy": "no", "disable_tqdm": True,
    }
    return transformers.Trainer(
        model=tiny_bert(), args=transformers.TrainingArguments(**{**defaults, **arguments}),
        train_dataset=train_dataset if train_dataset is not None else Tokens(N_TRAIN, 1),
        eval_dataset=eval_dataset if eval_dataset is not None else Tokens(N_VAL, 2),
        data_collator=collate, callbacks=[callback],
    )


def rows(store: LocalStore) -> pd.DataFrame:
    return store.read_traces("m", "v1", None).to_pandas()


@pytest.mark.parametrize(("state_epoch", "epoch"), [(None, 0), (0.0, 0), (0.5, 0), (1.0, 0), (1.0000001, 0), (1.25, 1), (2.0, 1)])
def test_epoch_index(state_epoch: float | None, epoch: int) -> None:
    assert epoch_index(state_epoch) == epoch


def test_dataset_type_of_metrics() -> None:
    assert dataset_type_of({"eval_loss": 1, "eval_runtime": 0.1}) == "val"
    assert dataset_type_of({"eval_test_loss": 1, "eval_test_runtime": 0.1}) == "test"


def test_epoch_strategy_with_id_column(store: LocalStore, tmp_path: Path) -> None:
    trainer_with(MLDebuggerCallback("m", "v1", store=store, id_column="uid"), tmp_path).train()
    traced = rows(store)
    assert traced.groupby("epoch").size().to_dict() == {0: N_VAL, 1: N_VAL}
    assert set(traced["input_id"]) == {f"u{i}" for i in range(N_VAL)}
    assert traced.groupby("epoch")["global_step"].unique().map(list).to_dict() == {0: [3], 1: [6]}
    assert len(traced["features"][0]) == 16
    np.testing.assert_array_equal(traced[traced.epoch == 0].sort_values("input_id", key=lambda s: s.str[1:].astype(int))["label"], Tokens(N_VAL, 2).labels)


def test_steps_strategy_and_positions_as_ids(store: LocalStore, tmp_path: Path) -> None:
    trainer_with(MLDebuggerCallback("m", "v1", store=store), tmp_path, eval_strategy="steps", eval_steps=2).train()
    traced = rows(store)
    assert sorted(traced["global_step"].unique()) == [2, 4, 6]
    assert traced.groupby("global_step")["epoch"].first().to_dict() == {2: 0, 4: 1, 6: 1}
    assert sorted(traced["input_id"].astype(int).unique()) == list(range(N_VAL))


def test_dict_of_eval_datasets_and_predict_is_ignored(store: LocalStore, tmp_path: Path) -> None:
    evals = {"val": Tokens(N_VAL, 2), "test": Tokens(13, 3)}
    trainer = trainer_with(MLDebuggerCallback("m", "v1", store=store), tmp_path, eval_dataset=evals, num_train_epochs=1)
    trainer.train()
    trainer.predict(Tokens(9, 4))
    assert rows(store).groupby("dataset_type").size().to_dict() == {"test": 13, "val": N_VAL}


def test_training_split_and_label_smoothing(store: LocalStore, tmp_path: Path) -> None:
    """With label smoothing the Trainer pops the labels before the forward; they come from the dataset."""
    callback = MLDebuggerCallback("m", "v1", store=store, trace_train_every_n_epochs=2, every_n_epochs=2)
    trainer_with(callback, tmp_path, label_smoothing_factor=0.1).train()
    traced = rows(store)
    assert traced.groupby(["dataset_type", "epoch"]).size().to_dict() == {("train", 1): N_TRAIN, ("val", 1): N_VAL}
    val = traced[traced.dataset_type == "val"].sort_values("input_id", key=lambda s: s.astype(int))
    np.testing.assert_array_equal(val["label"], Tokens(N_VAL, 2).labels)


def test_id_column_dropped_by_remove_unused_columns(store: LocalStore, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    source = Tokens(N_VAL, 2)
    eval_set = datasets.Dataset.from_list([source[i] for i in range(N_VAL)])
    train_set = datasets.Dataset.from_list([Tokens(N_TRAIN, 1)[i] for i in range(N_TRAIN)])
    callback = MLDebuggerCallback("m", "v1", store=store, id_column="uid")
    trainer = trainer_with(
        callback, tmp_path, eval_dataset=eval_set, train_dataset=train_set, num_train_epochs=1,
    )
    trainer.data_collator = transformers.default_data_collator
    trainer.train()
    assert set(rows(store)["input_id"]) == {f"u{i}" for i in range(N_VAL)}


class BreakStore(transformers.TrainerCallback):
    def __init__(self, root: Path) -> None:
        self.root = root

    def on_epoch_begin(self, args, state, control, **kwargs) -> None:
        if state.epoch and state.epoch >= 1 and (self.root / "traces").is_dir():
            shutil.rmtree(self.root / "traces")
            (self.root / "traces").write_text("not a directory")


def test_store_failure_mid_training_warns_once(store: LocalStore, tmp_path: Path) -> None:
    trainer = trainer_with(MLDebuggerCallback("m", "v1", store=store), tmp_path, num_train_epochs=3)
    trainer.add_callback(BreakStore(store.root))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    ours = [w for w in caught if "ml-debugger (transformers)" in str(w.message)]
    assert trainer.state.epoch == 3 and len(ours) == 1 and "WriterError" in str(ours[0].message)
    assert store.committed_epochs("m", "v1") == [0]


def test_strict_raises(store: LocalStore, tmp_path: Path) -> None:
    trainer = trainer_with(MLDebuggerCallback("m", "v1", store=store, strict=True), tmp_path)
    trainer.add_callback(BreakStore(store.root))
    with pytest.raises(WriterError):
        trainer.train()
