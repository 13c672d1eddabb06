"""The Lightning callback inside real (tiny) Trainer runs: batch layouts, ids, schedules, failures."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pl = pytest.importorskip("lightning.pytorch")
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ml_debugger.core import TraceSession
from ml_debugger.exceptions import ConfigurationError, WriterError
from ml_debugger.integrations.lightning import MLDebuggerCallback
from ml_debugger.store import LocalStore

N_VAL = 37


class Boring(pl.LightningModule):
    """Calls its child model from the step (not ``self(x)``), so the logits module must be found."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _xy(self, batch):
        return (batch["x"], batch["y"]) if isinstance(batch, dict) else (batch[0], batch[1])

    def training_step(self, batch, batch_idx):
        x, y = self._xy(batch)
        return nn.functional.cross_entropy(self.model(x), y)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        x, y = self._xy(batch)
        self.log("val_loss", nn.functional.cross_entropy(self.model(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class DictSet(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i], "id": f"s{i}"}


def data(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(size, 8, generator=torch.Generator().manual_seed(seed))
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def loader(size: int = N_VAL, *, seed: int = 0, ids: bool = False, shuffle: bool = False) -> DataLoader:
    x, y = data(size, seed)
    dataset = TensorDataset(x, y, torch.arange(size) + 1000) if ids else TensorDataset(x, y)
    return DataLoader(dataset, batch_size=8, shuffle=shuffle)


def fit(callback: MLDebuggerCallback, val=None, *, epochs: int = 1, extra_callbacks=(), **trainer_kwargs) -> pl.Trainer:
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=epochs, callbacks=[callback, *extra_callbacks], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **trainer_kwargs,
    )
    trainer.fit(Boring(), loader(40, seed=1), loader() if val is None else val)
    return trainer


def rows(store: LocalStore) -> pd.DataFrame:
    return store.read_traces("m", "v1", None).to_pandas()


def test_records_every_validation_sample_once_per_epoch_and_skips_sanity_check(store: LocalStore) -> None:
    fit(MLDebuggerCallback("m", "v1", store=store), epochs=2, num_sanity_val_steps=2)
    traced = rows(store)
    assert traced.groupby("epoch").size().to_dict() == {0: N_VAL, 1: N_VAL}  # nothing from the sanity check
    assert sorted(traced["input_id"].astype(int).unique()) == list(range(N_VAL))
    assert traced.groupby("epoch")["global_step"].unique().map(list).to_dict() == {0: [5], 1: [10]}
    assert store.committed_epochs("m", "v1") == [0, 1]
    assert len(traced["features"][0]) == 12 and not traced["final_validation"].any()


def test_ids_from_the_batch_tuple(store: LocalStore) -> None:
    fit(MLDebuggerCallback("m", "v1", store=store), val=loader(ids=True))
    assert sorted(rows(store)["input_id"].astype(int)) == list(range(1000, 1000 + N_VAL))


def test_dict_batches(store: LocalStore) -> None:
    x, y = data(N_VAL)
    fit(MLDebuggerCallback("m", "v1", store=store), val=DataLoader(DictSet(x, y), batch_size=8))
    traced = rows(store)
    assert set(traced["input_id"]) == {f"s{i}" for i in range(N_VAL)}
    np.testing.assert_array_equal(traced.sort_values("input_id", key=lambda s: s.str[1:].astype(int))["label"], y)


def test_batch_to_trace(store: LocalStore) -> None:
    callback = MLDebuggerCallback("m", "v1", store=store, batch_to_trace=lambda b: (b[0], b[1], b[0][:, 0] * 0 + 7))
    fit(callback)
    assert rows(store)["input_id"].unique().tolist() == ["7"]


def test_shuffled_loader_falls_back_to_input_hashes(store: LocalStore) -> None:
    fit(MLDebuggerCallback("m", "v1", store=store), val=loader(shuffle=True))
    traced = rows(store)
    assert (traced["input_id"] == traced["input_hash"]).all() and len(traced) == N_VAL


def test_val_check_interval_keeps_both_validations_apart(store: LocalStore) -> None:
    fit(MLDebuggerCallback("m", "v1", store=store), val_check_interval=0.5)
    traced = rows(store)
    per_step = traced.groupby("global_step").size()
    assert len(per_step) == 2 and (per_step == N_VAL).all() and (traced["epoch"] == 0).all()
    latest = traced.sort_values("global_step").drop_duplicates(["input_id", "dataset_type", "epoch"], keep="last")
    assert len(latest) == N_VAL and (latest["global_step"] == per_step.index.max()).all()


def test_multiple_val_dataloaders(store: LocalStore) -> None:
    fit(MLDebuggerCallback("m", "v1", store=store), val=[loader(), loader(11, seed=3)])
    assert rows(store).groupby("dataset_type").size().to_dict() == {"val": N_VAL, "val_1": 11}


def test_named_val_dataloaders(store: LocalStore) -> None:
    fit(MLDebuggerCallback("m", "v1", store=store, dataset_names=["val", "test"]), val=[loader(), loader(11, seed=3)])
    assert rows(store).groupby("dataset_type").size().to_dict() == {"test": 11, "val": N_VAL}


def test_every_n_epochs_and_training_split(store: LocalStore) -> None:
    callback = MLDebuggerCallback("m", "v1", store=store, every_n_epochs=2, trace_train_every_n_epochs=1)
    fit(callback, epochs=2)
    counts = rows(store).groupby(["dataset_type", "epoch"]).size().to_dict()
    assert counts == {("train", 0): 40, ("train", 1): 40, ("val", 1): N_VAL}


def test_trainer_validate_is_a_final_validation(store: LocalStore) -> None:
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[MLDebuggerCallback("m", "v1", store=store)])
    trainer.validate(Boring(), loader())
    traced = rows(store)
    assert len(traced) == N_VAL and traced["final_validation"].all()


def test_shared_session(store: LocalStore) -> None:
    session = TraceSession("m", "v1", "classification", store=store)
    fit(MLDebuggerCallback(session=session))
    assert len(rows(store)) == N_VAL
    session.close()


def test_names_are_required() -> None:
    with pytest.raises(ConfigurationError, match="model_name"):
        MLDebuggerCallback()


class BreakStore(pl.Callback):
    """Replaces the store's traces directory by a file after the first epoch, so writes fail."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 0:
            shutil.rmtree(self.root / "traces")
            (self.root / "traces").write_text("not a directory")


def test_store_failure_mid_training_warns_once_and_training_finishes(store: LocalStore) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = fit(MLDebuggerCallback("m", "v1", store=store), epochs=3, extra_callbacks=[BreakStore(store.root)])
    ours = [w for w in caught if "ml-debugger (lightning)" in str(w.message)]
    assert trainer.current_epoch == 3, "training ran to the end"
    assert len(ours) == 1
    assert "WriterError" in str(ours[0].message) and "not a directory" in str(ours[0].message).lower()
    assert store.committed_epochs("m", "v1") == [0]


def test_strict_raises_the_failure(store: LocalStore) -> None:
    with pytest.raises(WriterError):
        fit(MLDebuggerCallback("m", "v1", store=store, strict=True), epochs=2, extra_callbacks=[BreakStore(store.root)])
