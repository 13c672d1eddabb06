"""Two real 2-D detection results compared with no detection-specific code: units are objects and
false positives, named by input_id and unit_id; metrics are the task's own."""

from __future__ import annotations

import dataclasses

from ml_debugger.evaluator import Evaluator
from ml_debugger.store import LocalStore
from tests.tasks.detection2d.recording import record
from tests.tasks.detection2d.synthetic import random_detection_set

DROPPED = 3  # v2 never predicts this class


def test_objects_of_a_class_the_new_version_no_longer_predicts_are_newly_broken(store: LocalStore) -> None:
    data = random_detection_set(0, n_images=20)
    keep = data.dt_labels != DROPPED
    fewer = dataclasses.replace(data, dt_image=data.dt_image[keep], dt_boxes=data.dt_boxes[keep],
                                dt_scores=data.dt_scores[keep], dt_labels=data.dt_labels[keep])
    record(store, data, version="v1")
    record(store, fewer, version="v2")
    for version in ("v1", "v2"):
        Evaluator("det", version, store=store).request_evaluation(result_name="r", progress=False)
    comparison = Evaluator("det", "v2", store=store).compare("v1/r", "r")
    assert comparison.key == ["input_id", "unit_id"]

    objects, labels = {}, {}
    for version in ("v1", "v2"):
        samples = Evaluator("det", version, store=store).get_result("r").get_samples()
        samples = samples[samples["unit_type"] == "object"]
        keys = list(zip(samples["input_id"], samples["unit_id"], strict=True))
        objects[version] = dict(zip(keys, samples["correct"], strict=True))
        labels = dict(zip(keys, samples["label"], strict=True))
    assert objects["v1"].keys() == objects["v2"].keys()
    changes = comparison.changes()
    changes = changes[changes["unit_id"].str.startswith("gt:")]
    by_kind = {kind: set(zip(part["input_id"], part["unit_id"], strict=True))
               for kind, part in changes.groupby("change")}
    before, after = objects["v1"], objects["v2"]
    assert by_kind.get("newly_broken", set()) == {k for k in before if before[k] and not after[k]}
    assert by_kind.get("fixed", set()) == {k for k in before if not before[k] and after[k]}
    dropped = {k for k, ok in before.items() if ok and labels[k] == DROPPED}
    assert dropped and dropped <= by_kind["newly_broken"]  # found by v1, impossible for v2 to find

    metrics = comparison.metrics().set_index("metric")
    assert {"map", "map_50", "mar_100", "objects", "predictions"} <= set(metrics.index)
    assert metrics.loc["predictions", "delta"] == -int((~keep).sum())
    assert metrics.loc["map", "delta"] < 0
    assert comparison.overview()["matched"].iloc[0] >= len(before)
    assert "-- Newly broken" in comparison.to_text(limit=3)

