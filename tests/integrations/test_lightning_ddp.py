"""A real 2-process DDP run on CPU (gloo): every validation sample is traced exactly once per
epoch after de-duplication, although DistributedSampler padded the odd-sized validation set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning.pytorch")

from ml_debugger.evaluator import Evaluator
from ml_debugger.store import LocalStore

SCRIPT = Path(__file__).with_name("lightning_ddp_script.py")
VAL_SIZE = 101


@pytest.mark.slow
def test_ddp_two_processes_trace_each_sample_once(mld_home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MLD_HOME": str(mld_home), "PYTHONUNBUFFERED": "1"}
    env.pop("LOCAL_RANK", None)
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "2"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ml-debugger (lightning)" not in run.stderr, "no tracing failure was reported"

    traced = LocalStore(mld_home).read_traces("ddp-model", "v1", None).to_pandas()
    assert set(traced["rank"]) == {0, 1}
    per_epoch = traced.groupby("epoch").size().to_dict()
    assert per_epoch == {0: VAL_SIZE + 1, 1: VAL_SIZE + 1}, "one padded duplicate per epoch"
    unique = traced.drop_duplicates(["input_id", "dataset_type", "epoch"])
    assert unique.groupby("epoch")["input_id"].apply(lambda s: sorted(s.astype(int))).map(tuple).to_dict() == {
        0: tuple(range(VAL_SIZE)), 1: tuple(range(VAL_SIZE)),
    }

    samples = Evaluator("ddp-model", "v1").request_evaluation(n_epoch=None).get_samples()
    assert samples.groupby("epoch").size().to_dict() == {0: VAL_SIZE, 1: VAL_SIZE}
