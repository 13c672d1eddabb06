"""docs/detection3d-evaluation.md documents every unit column, metric, table, heatmap, code and setting."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from ml_debugger.evaluator.analysis.codes import registered_codes
from ml_debugger.store import LocalStore
from ml_debugger.tasks.detection3d.config import Detection3DConfig
from ml_debugger.tasks.detection3d.evaluation import METRIC_COLUMNS
from tests.tasks.detection3d.test_findings import evaluated

DOC = (Path(__file__).resolve().parents[3] / "docs" / "detection3d-evaluation.md").read_text()


def test_every_column_metric_code_and_setting_is_documented() -> None:
    units, result = evaluated(LocalStore(tempfile.mkdtemp()))
    shared = {"dataset", "epoch", "input_id", "input_hash", "global_step", "category", "error_codes", "hotspot_cluster"}
    names = [c for c in units.reset_index().columns if c not in shared]
    names += [*METRIC_COLUMNS, *result.heatmap_names(), *(f.name for f in dataclasses.fields(Detection3DConfig))]
    names += [c for table in ("per_class", "range") for c in result.tables[table].columns if c not in shared]
    missing = [name for name in names if f"`{name}`" not in DOC]
    missing += [code.id for code in registered_codes("detection3d") if f"{code.id} `{code.name}`" not in DOC]
    assert not missing, f"undocumented in docs/detection3d-evaluation.md: {missing}"
