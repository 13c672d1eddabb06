"""Runs transformers_detr_shapes.py end to end on CPU and evaluates what it traced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("pycocotools")

N_VAL = 16


@pytest.mark.slow
def test_trainer_detr_traces_every_validation_image_per_epoch(load_script, check_detection_run) -> None:
    script = load_script(Path(__file__).with_name("transformers_detr_shapes.py"))
    script.main(epochs=2, n_val=N_VAL)

    rows = check_detection_run("shapes-detr", "hf-v1", N_VAL)
    # boxes and sizes are those of the drawn (original) images, not of the processor's resized ones
    assert set(rows["image_width"]) == set(rows["image_height"]) == {script.SIDE}
    drawn = script.draw_shapes(N_VAL, script.SIDE, seed=1)
    first = rows[rows["epoch"] == 0].sort_values("input_id", key=lambda c: c.astype(int))
    for cell, (_, boxes, _) in zip(first["gt_boxes"], drawn):
        np.testing.assert_allclose(np.stack(cell), boxes, atol=1e-3)
    assert list(rows["label_names"].iloc[0]) == script.CLASSES
    assert {len(f) for cell in rows["pred_features"] for f in cell} == {32}, "the decoder's query embeddings"
