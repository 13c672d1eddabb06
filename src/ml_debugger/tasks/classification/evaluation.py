"""The classification evaluation: stored rows -> de-duplicated samples -> every table of a Result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from ml_debugger.evaluator.analysis import analyze
from ml_debugger.evaluator.analysis.config import AnalysisConfig
from ml_debugger.evaluator.loading import load_eval_data
from ml_debugger.evaluator.result import HEATMAP_PREFIX
from ml_debugger.exceptions import NoDataError
from ml_debugger.tasks import EvaluationOutput


class ClassificationEvaluation:
    """Implements ``TaskEvaluation`` for classification (see the README's evaluation reference)."""

    def make_config(self, thresholds: Mapping[str, Any]) -> AnalysisConfig:
        return AnalysisConfig.from_kwargs(**thresholds)

    def evaluate(self, table: pa.Table, config: AnalysisConfig, *, progress: bool = False) -> EvaluationOutput:
        data, report = load_eval_data(table)
        if len(data.samples) == 0:
            raise NoDataError("no evaluable rows: every traced row has NaN or infinite model outputs")
        analysis = analyze(data, config, progress=progress)
        tables = {
            "metrics": analysis.metrics,
            "categories": analysis.categories,
            "issues": analysis.issues,
            "hotspots": analysis.hotspots,
            "samples": analysis.samples,
            "codes": analysis.codes,
            **{HEATMAP_PREFIX + name: frame for name, frame in analysis.heatmaps.items()},
        }
        meta = {
            "rows": len(data.samples),
            "stored_rows": report.stored_rows,
            "duplicates_removed": report.duplicates_removed,
            "nonfinite_removed": report.nonfinite_removed,
            "features": report.features,
        }
        return EvaluationOutput(tables=tables, meta=meta)


EVALUATION = ClassificationEvaluation()
