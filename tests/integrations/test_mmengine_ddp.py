"""A real 2-process DDP run on CPU (gloo): every rank writes, DefaultSampler's padding is dropped
by the hook, and every validation image is traced exactly once per epoch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mmengine", reason="needs MMEngine: pip install 'ml-debugger[mmengine]'")
pytest.importorskip("mmdet", reason="needs MMDetection: pip install 'ml-debugger[mmengine]'")

from ml_debugger.store import LocalStore

SCRIPT = Path(__file__).with_name("mmengine_ddp_script.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_write_and_padding_is_dropped(mld_home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MLD_HOME": str(mld_home), "PYTHONUNBUFFERED": "1"}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        env.pop(name, None)
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), str(_free_port())], env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ml-debugger (mmengine)" not in run.stderr, "no tracing failure was reported"
    rows = LocalStore(mld_home).read_traces("boring-ddp", "v1", None).to_pandas()
    assert rows.groupby("rank")["input_id"].apply(sorted).to_dict() == {
        0: ["0", "0", "2", "2", "4", "4"], 1: ["1", "1", "3", "3"],
    }, "rank 0 holds positions 0, 2, 4 and rank 1 positions 1, 3 (its padded position 5 dropped), per epoch"
    assert rows.groupby("epoch")["input_id"].apply(sorted).to_dict() == {
        1: ["0", "1", "2", "3", "4"], 2: ["0", "1", "2", "3", "4"],
    }
