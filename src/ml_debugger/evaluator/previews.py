"""The ``previews`` table of a result: the latest stored JPEG preview of each evaluated input."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml_debugger.evaluator.loading import latest_rows

PREVIEW_COLUMNS = ("dataset", "input_id", "preview")


def previews_table(traces: pa.Table) -> pd.DataFrame | None:
    """One row per ``(dataset, input_id)`` with a preview (the latest epoch's), sorted; None when
    the traces have no ``preview`` column."""
    if "preview" not in traces.column_names:
        return None
    kept = traces.take(pa.array(latest_rows(traces)))
    kept = kept.filter(pc.is_valid(kept.column("preview")))
    frame = pd.DataFrame({
        "dataset": kept.column("dataset_type").to_pylist(),
        "input_id": kept.column("input_id").to_pylist(),
        "epoch": kept.column("epoch").to_pylist(),
        "preview": kept.column("preview").to_pylist(),
    })
    frame = frame.sort_values(["dataset", "input_id", "epoch"], kind="stable")
    return frame.drop_duplicates(["dataset", "input_id"], keep="last")[list(PREVIEW_COLUMNS)].reset_index(drop=True)
