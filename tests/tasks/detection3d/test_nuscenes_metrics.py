"""nuscenes_evaluate against the nuScenes devkit's own evaluation code, on generated data with every corner case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks.detection3d.batch import FrameBoxes
from ml_debugger.tasks.detection3d.nuscenes_metrics import (
    METRIC_NAMES,
    NUSCENES_DEFAULTS,
    TP_METRICS,
    FrameSet,
    NuScenesConfig,
    NuScenesEvaluation,
    box_pair_errors,
    match_centers,
    nuscenes_evaluate,
    range_bins,
)

from .synthetic import (
    CLASS_NAMES,
    NO_DT_CLASS,
    NO_GT_CLASS,
    devkit_config,
    devkit_matches,
    random_frame_set,
    run_devkit,
)

pytest.importorskip("nuscenes.eval.detection.algo")
pytest.importorskip("pyquaternion")

MEAN_KEYS = {"mate": "trans_err", "mase": "scale_err", "maoe": "orient_err", "mave": "vel_err", "maae": "attr_err"}


def _assert_equal_to_devkit(ours: NuScenesEvaluation, metrics, data, names: dict[str, str] | None = None) -> None:
    """AP, precision and confidence curves bit for bit; TP errors and the summary to 1e-9 (last-bit differences).

    ``names`` maps our class names to the devkit's when they differ.
    """
    names = names or {name: name for name in ours.class_names}
    ths = ours.config.dist_ths
    for k, name in enumerate(ours.class_names):
        ref_name = names[name]
        row = ours.per_class.iloc[k]
        assert row["name"] == name
        for t, th in enumerate(ths):
            md = data[(ref_name, th)]
            np.testing.assert_array_equal(ours.curves.precision[k, t], md.precision)
            np.testing.assert_array_equal(ours.curves.confidence[k, t], md.confidence)
            assert row[f"ap_{th}"] == metrics.get_label_ap(ref_name, th)
        md = data[(ref_name, ours.config.dist_th_tp)]
        for metric in TP_METRICS:
            np.testing.assert_allclose(ours.curves.tp_errors[metric][k], getattr(md, metric), rtol=0, atol=1e-9)
            np.testing.assert_allclose(row[metric], metrics.get_label_tp(ref_name, metric), rtol=0, atol=1e-9)
    summary = metrics.serialize()
    assert list(ours.metrics) == list(METRIC_NAMES)
    assert ours.metrics["map"] == summary["mean_ap"]
    np.testing.assert_allclose(ours.metrics["nds"], summary["nd_score"], rtol=0, atol=1e-9)
    for key, metric in MEAN_KEYS.items():
        np.testing.assert_allclose(ours.metrics[key], summary["tp_errors"][metric], rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_equal_to_devkit(seed: int) -> None:
    frames = random_frame_set(seed)
    ours = nuscenes_evaluate(frames, class_names=CLASS_NAMES)
    metrics, data, gt, pred, _ = run_devkit(frames, CLASS_NAMES)
    _assert_equal_to_devkit(ours, metrics, data)
    # The filters keep exactly the boxes the devkit's filter_eval_boxes keeps.
    assert ours.per_class["n_gt"].sum() == len(gt.all) and ours.per_class["n_dt"].sum() == len(pred.all)


@pytest.mark.parametrize("seed", range(3))
def test_matches_equal_to_the_devkit_loop(seed: int) -> None:
    frames = random_frame_set(seed)
    matching = match_centers(frames, class_names=CLASS_NAMES, dist_th=3.0)  # 3.0: not an AP threshold
    for t, th in enumerate(matching.dist_ths):
        dt_match, gt_match = devkit_matches(frames, CLASS_NAMES, th)
        np.testing.assert_array_equal(matching.dt_match_at[:, t], dt_match)
        np.testing.assert_array_equal(matching.gt_match_at[:, t], gt_match)
    dt_match, gt_match = devkit_matches(frames, CLASS_NAMES, 3.0)
    np.testing.assert_array_equal(matching.dt_match, dt_match)
    np.testing.assert_array_equal(matching.gt_match, gt_match)


def test_generated_data_covers_the_corner_cases() -> None:
    frames = random_frame_set(0)
    result = nuscenes_evaluate(frames, class_names=CLASS_NAMES)
    m = result.matching
    per_frame = np.bincount(frames.gt_frame, minlength=frames.n_frames)
    assert (per_frame == 0).any() and per_frame.max() >= 35
    assert (np.bincount(frames.dt_frame, minlength=frames.n_frames) == 0).any()
    assert (~m.gt_in_range).sum() > 20 and (~m.dt_evaluated).sum() > 20  # beyond the class ranges
    ranges = np.array([NUSCENES_DEFAULTS.range_of(CLASS_NAMES[label]) for label in frames.gt_labels])
    assert (frames.gt_distance_from_ego == ranges).any()  # exactly at the range: filtered
    assert (~m.gt_has_points & m.gt_in_range).sum() > 5  # zero points
    assert np.isnan(frames.gt_velocities[m.gt_evaluated]).any() and np.isnan(frames.dt_velocities).any()
    assert (frames.gt_attributes[m.gt_evaluated] == "").any() and (frames.dt_scores == 0).any()
    row = result.per_class.set_index("name")
    assert row.loc[NO_GT_CLASS, "n_gt"] == 0 and row.loc[NO_GT_CLASS, "n_dt"] > 0 and row.loc[NO_GT_CLASS, "ap"] == 0
    assert row.loc[NO_DT_CLASS, "n_dt"] == 0 and row.loc[NO_DT_CLASS, "n_gt"] > 0
    assert (row.loc[NO_GT_CLASS, list(TP_METRICS)] == 1).all()
    assert np.isnan(row.loc["traffic_cone", ["orient_err", "vel_err", "attr_err"]].astype(float)).all()
    # Score ties across frames; distances exactly on a threshold (no match) and exactly equal.
    evaluated = m.dt_evaluated
    assert np.unique(frames.dt_scores[evaluated], return_counts=True)[1].max() > 10
    on_threshold = 0
    for t, th in enumerate(m.dist_ths):
        at = evaluated & (m.dt_nearest_gt_dist == th)
        assert (m.dt_match_at[at, t] == -1).all()  # a match needs a distance < th
        on_threshold += at.sum()
    assert on_threshold > 5
    same_gt = frames.gt_boxes[:, None, :2] == frames.gt_boxes[None, :, :2]
    assert (same_gt.all(axis=2).sum(axis=1) > 1).any()  # GTs annotated twice: equal distances
    flipped = m.dt_orient_err > 3.0
    assert flipped.sum() >= 3 and (m.dt_match >= 0).sum() > 100
    duplicates = m.dt_evaluated & (m.dt_match < 0) & (m.dt_nearest_gt_dist < 0.5)
    assert duplicates.sum() > 5


def test_nearest_boxes_equal_brute_force() -> None:
    frames = random_frame_set(4, n_frames=12)
    m = match_centers(frames, class_names=CLASS_NAMES)
    for dt in range(frames.n_dt):
        same_frame = np.flatnonzero(frames.gt_frame == frames.dt_frame[dt])
        dx = frames.gt_boxes[same_frame, :2] - frames.dt_boxes[dt, :2]
        dist = np.sqrt(dx[:, 0] * dx[:, 0] + dx[:, 1] * dx[:, 1])
        for mask, which, how_far in (
            (np.ones(len(same_frame), bool), m.dt_nearest_gt_any, m.dt_nearest_gt_any_dist),
            (frames.gt_labels[same_frame] == frames.dt_labels[dt], m.dt_nearest_gt, m.dt_nearest_gt_dist),
        ):
            if not mask.any():
                assert which[dt] == -1 and how_far[dt] == np.inf
                continue
            best = np.argmin(np.where(mask, dist, np.inf))
            assert which[dt] == same_frame[best] and how_far[dt] == dist[best]
    for g in range(frames.n_gt):
        same_frame = np.flatnonzero(frames.dt_frame == frames.gt_frame[g])
        if not len(same_frame):
            assert m.gt_nearest_dt_any[g] == -1
            continue
        dx = frames.dt_boxes[same_frame, :2] - frames.gt_boxes[g, :2]
        dist = np.sqrt(dx[:, 0] * dx[:, 0] + dx[:, 1] * dx[:, 1])
        assert m.gt_nearest_dt_any[g] == same_frame[np.argmin(dist)]
        same = frames.dt_labels[same_frame] == frames.gt_labels[g]
        if same.any():
            assert m.gt_nearest_dt[g] == same_frame[np.argmin(np.where(same, dist, np.inf))]


def test_small_blocks_split_frames_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames larger than a block are cut into pieces of detections; nothing may change."""
    from ml_debugger.tasks.detection3d import center_matching

    frames = random_frame_set(6, n_frames=10)
    whole = match_centers(frames, class_names=CLASS_NAMES, dist_th=3.0)
    monkeypatch.setattr(center_matching, "_BLOCK", 97)
    pieces = match_centers(frames, class_names=CLASS_NAMES, dist_th=3.0)
    for name, value in vars(whole).items():
        np.testing.assert_array_equal(getattr(pieces, name), value, err_msg=name)


def test_pair_errors_equal_devkit_functions() -> None:
    from nuscenes.eval.common.utils import attr_acc, center_distance, scale_iou, velocity_l2, yaw_diff

    from .synthetic import devkit_boxes

    frames = random_frame_set(5, n_frames=6)
    gt, pred, row_of = devkit_boxes(frames, CLASS_NAMES)
    gt_boxes, dt_boxes = gt.all, pred.all
    rng = np.random.default_rng(0)
    dt_rows, gt_rows = rng.integers(0, len(dt_boxes), 400), rng.integers(0, len(gt_boxes), 400)
    for period in (2 * math.pi, math.pi):
        ours = box_pair_errors(frames, dt_rows, gt_rows, period)
        for i, (d, g) in enumerate(zip(dt_rows, gt_rows)):
            gb, db = gt_boxes[g], dt_boxes[d]
            expected = {
                "trans_err": center_distance(gb, db), "scale_err": 1 - scale_iou(gb, db),
                "orient_err": yaw_diff(gb, db, period=period), "vel_err": velocity_l2(gb, db),
                "attr_err": 1 - attr_acc(gb, db),
            }  # fmt: skip
            for name, value in expected.items():
                np.testing.assert_allclose(ours[name][i], value, rtol=0, atol=1e-12, err_msg=name)
    assert row_of[id(gt_boxes[0])] == ("gt", 0)


def _frames(**changes) -> FrameSet:
    base = {
        "n_frames": 1, "gt_frame": [0], "gt_boxes": [[10, 0, 0, 2, 4, 1.5, 0]], "gt_labels": [7],
        "dt_frame": [0], "dt_boxes": [[10, 0, 0, 2, 4, 1.5, 0]], "dt_scores": [0.5], "dt_labels": [7],
    }  # fmt: skip
    base.update(changes)
    return FrameSet(**base)


def test_hand_made_frame() -> None:
    """Two cars; a detection exactly 0.5 m off, a flipped exact one, a duplicate, a far one, a pedestrian."""
    frames = _frames(
        n_frames=2,
        gt_frame=[0, 0, 1],
        gt_boxes=[[10, 0, 0, 2, 4, 1.5, 0.0], [20, 0, 0, 2, 4, 1.5, 0.0], [0, 45, 0, 2, 4, 1.5, 0.0]],
        gt_labels=[7, 7, 7],
        gt_velocities=[[1.0, 0.0], [np.nan, np.nan], [0, 0]],
        gt_attributes=["vehicle.moving", None, "vehicle.parked"],
        dt_frame=[0, 0, 0, 0, 1],
        dt_boxes=[
            [10, 0.5, 0, 2, 4, 1.5, 0.0],  # 0.5 m: no match at 0.5, match from 1 m
            [20, 0, 0, 1, 4, 1.5, math.pi],  # exact, flipped, half as wide
            [20, 0.25, 0, 2, 4, 1.5, 0.0],  # duplicate of the second car
            [10, 0, 0, 0.5, 0.5, 1.5, 0.0],  # a pedestrian on the first car
            [0, 55, 0, 2, 4, 1.5, 0.0],  # beyond the car range
        ],
        dt_scores=[0.9, 0.8, 0.7, 0.95, 0.99],
        dt_labels=[7, 7, 7, 3, 7],
        dt_velocities=[[1.0, 3.0], [0, 0], [0, 0], [0, 0], [0, 0]],
        dt_attributes=["vehicle.parked", "vehicle.moving", None, None, None],
    )
    result = nuscenes_evaluate(frames, class_names=CLASS_NAMES)
    m = result.matching
    assert m.dist_ths.tolist() == [0.5, 1.0, 2.0, 4.0] and m.dist_th == 2.0
    assert m.dt_match_at[:, 0].tolist() == [-1, 1, -1, -1, -1]
    assert m.dt_match.tolist() == [0, 1, -1, -1, -1] and m.gt_match.tolist() == [0, 1, -1]
    assert m.dt_evaluated.tolist() == [True] * 4 + [False] and m.gt_evaluated.tolist() == [True, True, True]
    assert m.dt_trans_err[0] == 0.5 and m.dt_orient_err[1] == pytest.approx(math.pi)
    assert m.dt_scale_err[1] == pytest.approx(0.5) and m.dt_vel_err[0] == 3.0 and np.isnan(m.dt_vel_err[1])
    assert m.dt_attr_err[0] == 1 and np.isnan(m.dt_attr_err[1]) and np.isnan(m.dt_trans_err[2])
    assert m.dt_nearest_gt[2] == 1 and m.dt_nearest_gt_dist[2] == 0.25
    assert m.dt_nearest_gt[3] == -1 and m.dt_nearest_gt_any[3] == 0 and m.dt_nearest_gt_any_dist[3] == 0
    assert m.gt_nearest_dt_any[0] == 3 and m.gt_nearest_dt[0] == 0
    table = m.detections()
    assert table.loc[3, "class_name"] == "pedestrian" and list(m.ground_truth()["match"]) == [0, 1, -1]
    metrics, data, *_ = run_devkit(frames, CLASS_NAMES)
    _assert_equal_to_devkit(result, metrics, data)
    car = result.per_class.set_index("name").loc["car"]
    assert car["n_gt"] == 3 and car["n_dt"] == 3 and car["ap_0.5"] < car["ap_1.0"]


def test_other_class_names_and_config() -> None:
    """Classes named freely, with their own ranges, periods and undefined errors; other thresholds and weights."""
    frames = random_frame_set(7)
    rename = {"car": "sedan", "traffic_cone": "cone", "barrier": "fence", "pedestrian": "person"}
    ours_names = {label: rename.get(name, name) for label, name in CLASS_NAMES.items()}
    devkit_ranges = {"car": 45, "truck": 50, "bus": 50, "trailer": 50, "construction_vehicle": 50, "pedestrian": 35,
                     "motorcycle": 40, "bicycle": 40, "traffic_cone": 30, "barrier": 30}  # fmt: skip
    config = NuScenesConfig(
        class_range={"sedan": 45, "person": 35, "cone": 30, "fence": 30, "truck": 50, "bus": 50},
        dist_ths=(1.0, 3.0),
        dist_th_tp=3.0,
        min_recall=0.2,
        min_precision=0.05,
        mean_ap_weight=3,
        orientation_period={"fence": math.pi},
        undefined_tp_errors={"cone": ("attr_err", "vel_err", "orient_err"), "fence": ("attr_err", "vel_err")},
    )
    # Without a range, motorcycles, bicycles, trailers and construction vehicles are kept at any distance:
    # the devkit sees them with a range larger than any distance in the data.
    far = {"motorcycle": 1e6, "bicycle": 1e6, "trailer": 1e6, "construction_vehicle": 1e6}
    order = [CLASS_NAMES[label] for label in sorted(CLASS_NAMES)]
    reference = devkit_config(
        order, class_range={n: {**devkit_ranges, **far}[n] for n in order}, dist_ths=[1.0, 3.0], dist_th_tp=3.0,
        min_recall=0.2, min_precision=0.05, mean_ap_weight=3,
    )  # fmt: skip
    ours = nuscenes_evaluate(frames, class_names=ours_names, config=config)
    metrics, data, *_ = run_devkit(frames, CLASS_NAMES, reference)
    _assert_equal_to_devkit(ours, metrics, data, names={rename.get(n, n): n for n in CLASS_NAMES.values()})
    assert list(ours.per_class.columns[4:7]) == ["ap", "ap_1.0", "ap_3.0"]


def test_default_range_for_unlisted_classes() -> None:
    frames = random_frame_set(10)
    ours = nuscenes_evaluate(frames, class_names=CLASS_NAMES, config=NuScenesConfig(class_range={}, default_range=35))
    order = [CLASS_NAMES[label] for label in sorted(CLASS_NAMES)]
    metrics, data, *_ = run_devkit(frames, CLASS_NAMES, devkit_config(order, class_range=dict.fromkeys(order, 35)))
    _assert_equal_to_devkit(ours, metrics, data)


def test_zero_point_gt_kept_when_asked() -> None:
    frames = random_frame_set(8)
    ours = nuscenes_evaluate(frames, class_names=CLASS_NAMES, config=NuScenesConfig(remove_zero_point_gt=False))
    unknown = FrameSet(**{**_columns_of(frames), "gt_num_points": None})
    metrics, data, *_ = run_devkit(unknown, CLASS_NAMES)  # num_pts -1: the devkit keeps every GT
    _assert_equal_to_devkit(ours, metrics, data)
    assert ours.matching.gt_has_points.all()


def _columns_of(frames: FrameSet) -> dict:
    names = ["n_frames", "gt_frame", "gt_boxes", "gt_labels", "gt_velocities", "gt_num_points", "gt_attributes",
             "dt_frame", "dt_boxes", "dt_scores", "dt_labels", "dt_velocities", "dt_attributes", "ego_xy"]  # fmt: skip
    return {name: getattr(frames, name) for name in names}


@pytest.mark.parametrize("side", ["dt", "gt"])
def test_one_side_empty(side: str) -> None:
    full = random_frame_set(9, n_frames=8)
    columns = _columns_of(full)
    empty = {"frame": [], "boxes": np.zeros((0, 7)), "labels": [], "velocities": None, "attributes": None}
    columns.update({f"{side}_{key}": value for key, value in empty.items()})
    columns.update({"dt_scores": []} if side == "dt" else {"gt_num_points": None})
    frames = FrameSet(**columns)
    ours = nuscenes_evaluate(frames, class_names=CLASS_NAMES)
    metrics, data, *_ = run_devkit(frames, CLASS_NAMES)
    _assert_equal_to_devkit(ours, metrics, data)
    assert ours.metrics["map"] == 0 and ours.metrics["mate"] == 1 and ours.metrics["nds"] == 0
    assert (ours.matching.dt_match == -1).all() and (ours.matching.gt_match == -1).all()


def test_nothing_at_all() -> None:
    frames = FrameSet(n_frames=3, gt_frame=[], gt_boxes=[], gt_labels=[], dt_frame=[], dt_boxes=[], dt_scores=[], dt_labels=[])
    ours = nuscenes_evaluate(frames, class_names={0: "car", 1: "barrier"})
    assert ours.metrics["map"] == 0 and ours.metrics["nds"] == 0 and ours.metrics["mave"] == 1
    cone_only = nuscenes_evaluate(frames, class_names={0: "traffic_cone"})
    assert math.isnan(cone_only.metrics["maoe"]) and cone_only.metrics["mate"] == 1  # NaN error: score 0
    assert len(ours.matching.detections()) == 0 and len(ours.matching.ground_truth()) == 0


def test_from_per_frame_equals_columns() -> None:
    frames = random_frame_set(2, n_frames=6)
    targets, predictions = [], []
    for f in range(frames.n_frames):
        g, d = frames.gt_frame == f, frames.dt_frame == f
        targets.append({
            "boxes_3d": np.column_stack([frames.gt_boxes[g], frames.gt_velocities[g]]), "labels_3d": frames.gt_labels[g],
            "num_points": frames.gt_num_points[g], "attributes": list(frames.gt_attributes[g]),
        })  # fmt: skip
        predictions.append(FrameBoxes(
            boxes=frames.dt_boxes[d], labels=frames.dt_labels[d], scores=frames.dt_scores[d],
            velocities=frames.dt_velocities[d], attributes=tuple(frames.dt_attributes[d]),
        ))  # fmt: skip
    rebuilt = FrameSet.from_per_frame(targets, predictions, ego_xy=frames.ego_xy)
    for side in ("gt", "dt"):
        order = np.argsort(getattr(frames, f"{side}_frame"), kind="stable")
        for name in ("frame", "boxes", "labels", "velocities", "attributes", "distance_from_ego"):
            np.testing.assert_array_equal(getattr(rebuilt, f"{side}_{name}"), getattr(frames, f"{side}_{name}")[order])
    plain = FrameSet.from_per_frame([{"boxes_3d": [[0, 0, 0, 1, 1, 1, 0]], "labels_3d": [1]}],
                                    [{"boxes_3d": [], "labels_3d": [], "scores_3d": []}])  # fmt: skip
    assert plain.gt_num_points.tolist() == [-1] and np.isnan(plain.gt_velocities).all() and plain.gt_attributes.tolist() == [""]


def test_range_bins() -> None:
    bins = range_bins(np.array([0.0, 19.99, 20.0, 49.0, 50.0, 120.0]))
    assert list(bins.astype(str)) == ["0-20m", "0-20m", "20-30m", "40-50m", "50m+", "50m+"]
    assert list(range_bins([5.0, 25.0], edges=(10, 20)).isna()) == [True, True]
    with pytest.raises(ConfigurationError, match="edges"):
        range_bins([1.0], edges=(10, 5))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gt_boxes": [[0, 0, 0, 1, 1, 1]]}, "gt_boxes must have shape"),
        ({"dt_boxes": [[0, 0, 0, -1, 1, 1, 0]]}, "dt_boxes must have sizes"),
        ({"dt_boxes": [[0, 0, np.nan, 1, 1, 1, 0]]}, "dt_boxes must be finite"),
        ({"gt_labels": [-1]}, "gt_labels must be >= 0"),
        ({"gt_labels": [1.5]}, "gt_labels must hold integers"),
        ({"dt_frame": [1]}, "dt_frame must be in"),
        ({"dt_scores": [np.nan]}, "dt_scores must be finite"),
        ({"gt_velocities": [[np.inf, 0]]}, "gt_velocities must not be infinite"),
        ({"dt_velocities": [[0, 0, 0]]}, "dt_velocities must have shape"),
        ({"gt_num_points": [-2]}, "gt_num_points must be >= 0"),
        ({"gt_attributes": [3]}, "gt_attributes must hold strings"),
        ({"ego_xy": [[0, 0], [1, 1]]}, "ego_xy must have shape"),
        ({"n_frames": -1}, "n_frames must be >= 0"),
    ],
)
def test_invalid_input_names_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _frames(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dist_ths": (0.5, 1.0), "dist_th_tp": 2.0}, "dist_th_tp must be one of"),
        ({"dist_ths": ()}, "dist_ths must be"),
        ({"min_precision": 1.0}, "min_precision"),
        ({"min_recall": -0.1}, "min_recall"),
        ({"class_range": {"car": 0}}, "class_range"),
        ({"default_range": -1.0}, "default_range"),
        ({"orientation_period": {"car": 0.0}}, "orientation_period"),
        ({"undefined_tp_errors": {"car": ("speed_err",)}}, "undefined_tp_errors"),
    ],
)
def test_invalid_config_names_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        NuScenesConfig(**changes)


def test_class_names_checked_and_arrays_read_only() -> None:
    frames = _frames()
    with pytest.raises(ValueError):
        frames.gt_boxes[0, 0] = 3
    with pytest.raises(ConfigurationError, match=r"gt_labels has labels \[7\] that class_names does not name"):
        nuscenes_evaluate(frames, class_names={9: "car"})
    with pytest.raises(ConfigurationError, match="its own name"):
        nuscenes_evaluate(frames, class_names={7: "car", 9: "car"})
    with pytest.raises(ConfigurationError, match="non-empty"):
        nuscenes_evaluate(frames, class_names={})
    with pytest.raises(ConfigurationError, match="dist_th"):
        match_centers(frames, class_names={7: "car"}, dist_th=0.0)
