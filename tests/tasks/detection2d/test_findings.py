"""Planted detection failures come out as the codes and categories that name them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_debugger.evaluator import Evaluator
from ml_debugger.store import LocalStore
from ml_debugger.tasks.detection2d.detection_set import DetectionSet
from tests.tasks.detection2d.recording import record

CAR, BUS = 1, 2


class Scene:
    """Images of GT boxes and detections, built one image at a time."""

    def __init__(self) -> None:
        self.gt: list[tuple] = []
        self.dt: list[tuple] = []
        self.n_images = 0

    def image(self, objects=(), detections=()) -> int:
        for box, label in objects:
            self.gt.append((self.n_images, box, label))
        for box, label, score in detections:
            self.dt.append((self.n_images, box, label, score))
        self.n_images += 1
        return self.n_images - 1

    def build(self) -> DetectionSet:
        return DetectionSet(
            n_images=self.n_images,
            gt_image=np.array([g[0] for g in self.gt], np.int64),
            gt_boxes=np.array([g[1] for g in self.gt], np.float64).reshape(-1, 4),
            gt_labels=np.array([g[2] for g in self.gt], np.int64),
            dt_image=np.array([d[0] for d in self.dt], np.int64),
            dt_boxes=np.array([d[1] for d in self.dt], np.float64).reshape(-1, 4),
            dt_labels=np.array([d[2] for d in self.dt], np.int64),
            dt_scores=np.array([d[3] for d in self.dt], np.float64),
        )


BIG = [100, 100, 200, 180]
OTHER = [300, 200, 420, 300]


def scene(epoch: int) -> DetectionSet:
    """Thirty well-found images, then one planted failure per image."""
    s = Scene()
    for _ in range(30):
        s.image([(BIG, CAR), (OTHER, BUS)], [(BIG, CAR, 0.95), (OTHER, BUS, 0.93)])
    s.image([(BIG, CAR)], [(BIG, CAR, 0.95), ([500, 20, 600, 90], BUS, 0.92)])  # img30: unannotated object
    s.image([(BIG, CAR)], [([102, 101, 199, 181], BUS, 0.94)])  # img31: labelled car, clearly a bus
    s.image([([10, 10, 14, 15], CAR)], [])  # img32: a tiny car, missed
    s.image([(BIG, CAR), ([110, 105, 210, 185], CAR)], [(BIG, CAR, 0.95)])  # img33: crowded, one missed
    s.image([(BIG, CAR)], [(BIG, CAR, 0.95), ([101, 100, 201, 181], CAR, 0.9)])  # img34: a duplicate
    s.image([(BIG, CAR)], [(BIG, CAR, 0.95)] if epoch == 0 else [])  # img35: found, then lost
    s.image([(BIG, CAR)], [(BIG, CAR, 0.2)])  # img36: found with a low score
    return s.build()


def units_of(store: LocalStore, **settings) -> pd.DataFrame:
    for epoch in (0, 1):
        record(store, scene(epoch), epoch=epoch)
    result = Evaluator("det", "v1", store=store).request_evaluation(n_epoch=None, **settings)
    units = result.get_samples()
    return units[units["epoch"] == 1].set_index(["input_id", "unit_id"])


def codes(units: pd.DataFrame, image: str, unit: str) -> set[str]:
    return set(units.loc[(image, unit), "error_codes"])


def test_the_operating_score_maximises_f1(store: LocalStore) -> None:
    units = units_of(store)
    # Keeping the 0.92 / 0.90 false positives out and every 0.93+ detection in is best.
    assert units["operating_score"].unique().tolist() == [np.float32(0.93)]
    assert {"DET006", "DET007"} <= codes(units, "img32", "gt:0")
    assert "DET009" in codes(units, "img36", "gt:0")
    found = units.loc[[(f"img{i}", "gt:0") for i in range(30)]]
    assert (found["category"] == "stable_coverage").all()


def test_planted_failures_get_the_codes_that_name_them(store: LocalStore) -> None:
    units = units_of(store, operating_score=0.5)
    assert {"DET010", "DET005", "DET012"} <= codes(units, "img30", "pred:2@500,20,600,90")
    assert units.loc[("img30", "pred:2@500,20,600,90"), "category"] == "aleatoric_hotspot"
    assert {"DET011", "DET001"} <= codes(units, "img31", "gt:0")
    assert units.loc[("img31", "gt:0"), "category"] == "aleatoric_hotspot"
    assert units.loc[("img31", "gt:0"), "prediction"] == BUS
    assert {"DET006", "DET007"} <= codes(units, "img32", "gt:0")
    assert {"DET006", "DET008"} <= codes(units, "img33", "gt:1")
    assert {"DET004", "DET012"} <= codes(units, "img34", "pred:1@101,100,201,181")
    assert units.loc[("img34", "pred:1@101,100,201,181"), "category"] == "critical_hotspot"
    assert "DET014" in codes(units, "img35", "gt:0") and units.loc[("img35", "gt:0"), "forgetting_events"] == 1
    assert "DET009" in codes(units, "img36", "gt:0")
    well_found = units.loc[[(f"img{i}", "gt:0") for i in range(30)]]
    assert (well_found["category"] == "stable_coverage").all()


def test_a_single_epoch_blames_no_annotation(store: LocalStore) -> None:
    record(store, scene(0))
    units = Evaluator("det", "v1", store=store).request_evaluation().get_samples()
    assert not units["error_codes"].map(lambda c: bool({"DET010", "DET011"} & set(c))).any()
    assert (units["category"] != "aleatoric_hotspot").all()


def test_heatmaps_have_a_background_row_and_error_types(store: LocalStore) -> None:
    record(store, scene(1))
    result = Evaluator("det", "v1", store=store).request_evaluation()
    confusion = result.get_heatmap("confusion", matrix=True)
    assert -1 in confusion.index and -1 in confusion.columns
    assert confusion.loc[CAR, -1] >= 3  # missed cars
    assert confusion.loc[CAR, BUS] == 1
    by_type = result.get_heatmap("class_by_error_type", matrix=True)
    assert by_type.loc[CAR, "miss"] >= 2
    sizes = result.get_heatmap("size_by_error_type", matrix=True)
    assert sizes.loc["small", "miss"] == 1
    tide = result.tables["tide"].set_index("error_type")
    assert tide.loc["dupe", "count"] == 1 and tide.loc["bkg", "count"] == 1


def test_objects_failing_in_one_region_of_feature_space_form_a_hotspot(store: LocalStore) -> None:
    """400 images with one object each; objects whose features lie in one corner are all missed."""
    rng = np.random.default_rng(0)
    n = 400
    features = rng.normal(size=(n, 8)).astype(np.float32)
    slice_ = np.flatnonzero(features[:, 0] > 1.3)  # about 10% of the objects
    features[slice_, 0] += 3.0
    s = Scene()
    for i in range(n):
        missed = i in set(slice_) or rng.random() < 0.05
        s.image([(BIG, CAR)], [] if missed else [(BIG, CAR, 0.9)])
    data = s.build()
    record(store, data, gt_features=features, dt_features=np.zeros((data.n_dt, 8), np.float32))
    result = Evaluator("det", "v1", store=store).request_evaluation()
    units = result.get_samples()
    hotspots = result.get_hotspots()
    assert len(hotspots) >= 1
    top = hotspots.iloc[0]
    members = set(units.loc[units["hotspot_cluster"] == top["cluster_id"], "input_id"])
    planted = {f"img{i}" for i in slice_}
    assert len(members & planted) / len(members | planted) >= 0.6
    assert (units.set_index("input_id").loc[sorted(planted), "category"] == "hotspot").mean() > 0.8
