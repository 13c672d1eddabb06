"""docs/detection-evaluation.md documents every unit column, metric, code and setting of the analysis."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from ml_debugger.evaluator.analysis.codes import registered_codes
from ml_debugger.store import LocalStore
from ml_debugger.tasks.detection2d.config import DetectionConfig
from ml_debugger.tasks.detection2d.metrics import METRIC_COLUMNS
from tests.tasks.detection2d.test_findings import units_of

DOC = (Path(__file__).resolve().parents[3] / "docs" / "detection-evaluation.md").read_text()


def test_every_column_metric_code_and_setting_is_documented() -> None:
    units = units_of(LocalStore(tempfile.mkdtemp())).reset_index()
    shared = {"dataset", "epoch", "input_id", "input_hash", "global_step", "category", "error_codes", "hotspot_cluster"}
    names = [c for c in units.columns if c not in shared]
    names += [*METRIC_COLUMNS, *(f.name for f in dataclasses.fields(DetectionConfig))]
    missing = [name for name in names if f"`{name}`" not in DOC]
    missing += [code.id for code in registered_codes("detection2d") if f"{code.id} `{code.name}`" not in DOC]
    assert not missing, f"undocumented in docs/detection-evaluation.md: {missing}"
