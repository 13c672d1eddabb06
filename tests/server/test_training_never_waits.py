"""Training never waits on the network: a real server paused with SIGSTOP during a real Lightning run.

Every training step and every epoch boundary (validation, where the callback commits) is timed;
none may wait for the paused server. The server is resumed before the run ends, and everything
traced arrives, committed exactly once.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from ml_debugger.core import TraceSession
from ml_debugger.store.api import Backoff
from ml_debugger.store.remote import REGISTER_TIMEOUT, RemoteStore
from tests.server.live import LiveServer
from tests.server.parts import make_batch

pytest.importorskip("fastapi", reason="the server tests need the server extra: pip install 'ml-debugger[server]'")
pl = pytest.importorskip("lightning.pytorch")
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ml_debugger.integrations.lightning import MLDebuggerCallback

EPOCHS, N_TRAIN, N_VAL, STEP_SECONDS = 5, 40, 37, 0.1
FAST = Backoff(base=0.05, cap=0.5)


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        time.sleep(STEP_SECONDS)  # a step that takes a while, so the pause spans many of them
        x, y = batch
        return nn.functional.cross_entropy(self.model(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.model(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader(size: int, seed: int) -> DataLoader:
    x = torch.randn(size, 8, generator=torch.Generator().manual_seed(seed))
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()), batch_size=8)


class PauseAndTime(pl.Callback):
    """Pauses the server when epoch 1 starts and resumes it when fitting ends; times every step and
    the gaps between steps (which hold the validation loop and the callback's commit)."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.steps: list[float] = []
        self.gaps: list[float] = []
        self.paused_at: float | None = None
        self.resumed_at: float | None = None
        self._step_started = 0.0
        self._last_end: float | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            os.kill(self.server.pid, signal.SIGSTOP)
            self.paused_at = time.monotonic()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._step_started = time.monotonic()
        if self._last_end is not None and self.paused_at is not None:
            self.gaps.append(self._step_started - self._last_end)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._last_end = time.monotonic()
        if self.paused_at is not None:
            self.steps.append(self._last_end - self._step_started)

    def on_fit_end(self, trainer, pl_module) -> None:
        os.kill(self.server.pid, signal.SIGCONT)
        self.resumed_at = time.monotonic()


def test_a_paused_server_never_holds_up_a_lightning_training_step(make_server, tmp_path: Path) -> None:
    server = make_server().start()
    key = server.create_key()
    store = RemoteStore(server.url, key, home=tmp_path / "client", upload_timeout=20, backoff=FAST)
    timer = PauseAndTime(server)
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=EPOCHS, callbacks=[MLDebuggerCallback("paused", "v1", store=store), timer],
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    try:
        trainer.fit(Tiny(), loader(N_TRAIN, seed=1), loader(N_VAL, seed=0))
    finally:
        os.kill(server.pid, signal.SIGCONT)
    paused = timer.resumed_at - timer.paused_at
    assert len(timer.steps) == (EPOCHS - 1) * N_TRAIN // 8
    assert max(timer.steps) < STEP_SECONDS + 0.5, f"a step took {max(timer.steps):.2f} s while the server was paused"
    assert max(timer.gaps) < 2.0, f"an epoch boundary took {max(timer.gaps):.2f} s while the server was paused"
    assert paused > max(timer.gaps) + 0.5
    print(f"server paused {paused:.1f} s: longest step {max(timer.steps):.3f} s, longest epoch boundary "
          f"(validation + commit) {max(timer.gaps):.3f} s")

    # the callback's teardown waited (bounded) for the uploads once the server was back
    local = server.store()
    assert local.committed_epochs("paused", "v1") == list(range(EPOCHS))
    table = local.read_traces("paused", "v1", None).to_pandas()
    assert table.groupby("epoch").size().tolist() == [N_VAL] * EPOCHS
    assert not store.pending_uploads() and store.spool.is_empty()


def test_creating_a_tracer_never_waits_long_for_a_stopped_or_missing_server(make_server, tmp_path: Path) -> None:
    server = make_server().start()
    key = server.create_key()
    os.kill(server.pid, signal.SIGSTOP)
    try:
        store = RemoteStore(server.url, key, home=tmp_path / "client", upload_timeout=1.0, backoff=FAST)
        started = time.monotonic()
        session = TraceSession("stopped", "v1", "classification", store=store)
        created = time.monotonic() - started
        session.record(make_batch(np.arange(100)), dataset_type="val", n_epoch=0)
        started = time.monotonic()
        with pytest.warns(UserWarning, match="not yet committed"):
            session.wait_for_save()  # explicit: waits at most upload_timeout, then says what is spooled
        waited = time.monotonic() - started
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert created < REGISTER_TIMEOUT + 1.0 <= 2.0, f"creating a tracer took {created:.1f} s"
    assert waited < 1.0 + 1.0, f"wait_for_save took {waited:.1f} s with upload_timeout=1"
    assert store.wait_for_uploads(60)  # the server is back: everything spooled is sent
    assert server.store().read_traces("stopped", "v1", None).num_rows == 100

    server.kill()  # nothing listens: connecting fails at once
    down = RemoteStore(server.url, key, home=tmp_path / "client2", upload_timeout=0.2, backoff=FAST)
    started = time.monotonic()
    TraceSession("gone", "v1", "classification", store=down)
    assert time.monotonic() - started < 0.5
    down.close()
