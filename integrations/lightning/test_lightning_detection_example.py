"""Runs lightning_fasterrcnn_shapes.py end to end on CPU and evaluates what it traced."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lightning.pytorch")
pytest.importorskip("torchvision")
pytest.importorskip("pycocotools")

N_VAL = 24


@pytest.mark.slow
def test_lightning_faster_rcnn_traces_every_validation_image_per_epoch(load_script, check_detection_run) -> None:
    script = load_script(Path(__file__).with_name("lightning_fasterrcnn_shapes.py"))
    script.main(epochs=2, n_val=N_VAL)

    rows = check_detection_run("shapes-frcnn", "lightning-v1", N_VAL)
    assert rows["global_step"].notna().all()
    assert {len(f) for cell in rows["pred_features"] for f in cell} == {64}, "the box head's features"
    assert list(rows["label_names"].iloc[0]) == script.NAMES
