"""coco_evaluate against pycocotools' COCOeval itself, on generated data with every corner case."""

from __future__ import annotations

import numpy as np
import pytest

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks.detection2d.coco_metrics import AREA_RANGES, CocoEvaluation, coco_evaluate
from ml_debugger.tasks.detection2d.detection_set import DetectionSet

from .synthetic import DT_ONLY_LABEL, GT_ONLY_LABEL, random_detection_set, run_pycocotools

pytest.importorskip("pycocotools")

STAT_KEYS = [
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
]  # fmt: skip


def _assert_equal_to_cocoeval(ours: CocoEvaluation, ref, keys: list[str] = STAT_KEYS) -> None:
    assert list(ours.stats) == keys
    np.testing.assert_allclose(list(ours.stats.values()), ref.stats, rtol=0, atol=1e-9)
    # The whole accumulated arrays, bit for bit (the class axis follows ref.params.catIds).
    assert ours.labels.tolist() == list(ref.params.catIds)
    np.testing.assert_array_equal(ours.precision, ref.eval["precision"])
    np.testing.assert_array_equal(ours.recall, ref.eval["recall"])


def _assert_per_class(ours: CocoEvaluation, ref) -> None:
    precision, recall, thresholds = ref.eval["precision"], ref.eval["recall"], ref.params.iouThrs
    for k, row in ours.per_class.iterrows():
        assert row["label"] == ref.params.catIds[k]
        s = precision[:, :, k, 0, -1]
        if (s == -1).all():
            assert np.isnan(row[["ap", "ap_50", "ap_75", "ar_100"]].astype(float)).all()
            continue
        assert row["ap"] == pytest.approx(np.mean(s[s > -1]), abs=1e-12)
        assert row["ap_50"] == pytest.approx(np.mean(s[thresholds == 0.5]), abs=1e-12)
        assert row["ap_75"] == pytest.approx(np.mean(s[thresholds == 0.75]), abs=1e-12)
        assert row["ar_100"] == pytest.approx(np.mean(recall[:, k, 0, -1]), abs=1e-12)


def _assert_matching_equal_to_evaluate_img(ours: CocoEvaluation, ref, data: DetectionSet) -> None:
    """Per-object matches (area 'all', 100 detections) equal evaluateImg's, for every threshold."""
    m = ours.matching
    dt_match = np.full_like(m.dt_match, -1)
    dt_ignore = np.ones_like(m.dt_ignore)
    gt_match = np.full_like(m.gt_match, -1)
    gt_ignore = np.zeros_like(m.gt_ignore)
    for e in ref.evalImgs:
        if e is None or e["aRng"] != list(AREA_RANGES["all"]):
            continue
        dt_rows = np.asarray(e["dtIds"], np.int64) - 1
        gt_rows = np.asarray(e["gtIds"], np.int64) - 1
        dt_match[dt_rows] = e["dtMatches"].T.astype(np.int64) - 1
        dt_ignore[dt_rows] = e["dtIgnore"].T.astype(bool)
        gt_match[gt_rows] = e["gtMatches"].T.astype(np.int64) - 1
        gt_ignore[gt_rows] = e["gtIgnore"].astype(bool)
    np.testing.assert_array_equal(m.dt_match, dt_match)
    np.testing.assert_array_equal(m.dt_ignore, dt_ignore)
    np.testing.assert_array_equal(m.gt_match, gt_match)
    np.testing.assert_array_equal(m.gt_ignore, gt_ignore)


@pytest.mark.parametrize("seed", range(6))
def test_equal_to_pycocotools(seed: int) -> None:
    data = random_detection_set(seed)
    ours, ref = coco_evaluate(data), run_pycocotools(data)
    _assert_equal_to_cocoeval(ours, ref)
    _assert_per_class(ours, ref)
    _assert_matching_equal_to_evaluate_img(ours, ref, data)


def test_generated_data_covers_the_corner_cases() -> None:
    data = random_detection_set(0)
    ours = coco_evaluate(data)
    per_image = np.bincount(data.gt_image, minlength=data.n_images)
    assert (per_image == 0).any() and per_image.max() > 15
    assert (np.bincount(data.dt_image, minlength=data.n_images) == 0).any()
    assert data.gt_iscrowd.any()
    box_area = (data.gt_boxes[:, 2] - data.gt_boxes[:, 0]) * (data.gt_boxes[:, 3] - data.gt_boxes[:, 1])
    assert (data.gt_area != box_area).mean() > 0.5
    for limit in (32**2, 96**2):  # areas on both sides of each limit
        assert ((data.gt_area > limit / 1.5) & (data.gt_area < limit)).any()
        assert ((data.gt_area > limit) & (data.gt_area < limit * 1.5)).any()
    assert (ours.matching.dt_rank >= 100).any()  # maxDets cuts some detections
    assert np.unique(data.dt_scores, return_counts=True)[1].max() > 10  # score ties
    row = ours.per_class.set_index("label")
    assert row.loc[GT_ONLY_LABEL, "n_dt"] == 0 and row.loc[GT_ONLY_LABEL, "n_gt"] > 0
    assert row.loc[DT_ONLY_LABEL, "n_gt"] == 0 and np.isnan(row.loc[DT_ONLY_LABEL, "ap"])
    # Some IoUs sit exactly on a threshold (integer boxes), where >= versus > matters.
    iou = ours.matching.dt_best_iou
    assert np.isin(iou, ours.iou_thresholds).any()


def test_many_images_and_classes() -> None:
    data = random_detection_set(11, n_images=150, n_classes=7)
    ours, ref = coco_evaluate(data), run_pycocotools(data)
    _assert_equal_to_cocoeval(ours, ref)
    _assert_per_class(ours, ref)


def test_other_thresholds_and_max_dets() -> None:
    data = random_detection_set(3)
    thresholds, max_dets = np.array([0.3, 0.5, 0.7, 1.0]), [1, 5, 20]
    ours = coco_evaluate(data, iou_thresholds=thresholds, max_dets=tuple(max_dets))
    ref = run_pycocotools(data, iou_thresholds=thresholds, max_dets=max_dets)
    keys = STAT_KEYS[:6] + ["mar_1", "mar_5", "mar_20"] + STAT_KEYS[9:]
    _assert_equal_to_cocoeval(ours, ref, keys)
    assert ours.stats["map"] == -1  # pycocotools reads 'map' at maxDets=100 literally
    assert ours.stats["map_75"] == -1  # no 0.75 threshold
    assert ours.per_class["ap_75"].isna().all()


def test_no_detections_at_all() -> None:
    full = random_detection_set(4)
    data = DetectionSet(
        n_images=full.n_images, gt_image=full.gt_image, gt_boxes=full.gt_boxes, gt_labels=full.gt_labels,
        gt_iscrowd=full.gt_iscrowd, gt_area=full.gt_area,
        dt_image=[], dt_boxes=np.zeros((0, 4)), dt_scores=[], dt_labels=[],
    )  # fmt: skip
    ours, ref = coco_evaluate(data), run_pycocotools(data)
    _assert_equal_to_cocoeval(ours, ref)
    assert all(ours.stats[key] == 0 for key in STAT_KEYS)
    assert (ours.matching.gt_match == -1).all()


def test_no_ground_truth_at_all() -> None:
    full = random_detection_set(5)
    data = DetectionSet(
        n_images=full.n_images, gt_image=[], gt_boxes=np.zeros((0, 4)), gt_labels=[],
        dt_image=full.dt_image, dt_boxes=full.dt_boxes, dt_scores=full.dt_scores, dt_labels=full.dt_labels,
    )  # fmt: skip
    ours, ref = coco_evaluate(data), run_pycocotools(data)
    _assert_equal_to_cocoeval(ours, ref)
    assert all(ours.stats[key] == -1 for key in STAT_KEYS)
    assert (ours.matching.dt_match == -1).all()
    assert ours.per_class["ap"].isna().all()


def test_nothing_at_all() -> None:
    data = DetectionSet(
        n_images=3,
        gt_image=[],
        gt_boxes=[],
        gt_labels=[],
        dt_image=[],
        dt_boxes=[],
        dt_scores=[],
        dt_labels=[],
    )
    ours = coco_evaluate(data)
    assert all(value == -1 for value in ours.stats.values())
    assert ours.per_class.empty
    assert ours.precision.shape == (10, 101, 0, 4, 3)


def test_hand_made_image() -> None:
    """Two GTs of class 5; a perfect detection, a duplicate, and a detection at IoU exactly 0.5."""
    data = DetectionSet(
        n_images=1,
        gt_image=[0, 0],
        gt_boxes=[[0, 0, 10, 10], [100, 100, 120, 110]],
        gt_labels=[5, 5],
        dt_image=[0, 0, 0],
        dt_boxes=[[0, 0, 10, 10], [0, 0, 10, 10], [100, 100, 120, 105]],  # last: 100 / 200 = 0.5
        dt_scores=[0.9, 0.8, 0.7],
        dt_labels=[5, 5, 5],
    )
    result = coco_evaluate(data)
    m = result.matching
    assert m.dt_match[:, 0].tolist() == [0, -1, 1]  # at 0.5 the IoU of exactly 0.5 matches
    assert m.dt_match[:, 1].tolist() == [0, -1, -1]
    assert m.gt_match[:, 0].tolist() == [0, 2]
    assert m.dt_best_iou.tolist() == [1.0, 1.0, 0.5]
    # At 0.5: TP, FP, TP: precision 1 up to recall 0.5 then 2/3; above 0.5: recall 0.5 at precision 1.
    expected_50 = (51 * 1.0 + 50 * (2 / (1 + 2 + np.spacing(1)))) / 101
    assert result.stats["map_50"] == pytest.approx(expected_50, abs=1e-12)
    assert result.stats["map"] == pytest.approx((expected_50 + 9 * 51 / 101) / 10, abs=1e-12)
    assert result.per_class["n_gt"].tolist() == [2] and result.per_class["n_dt"].tolist() == [3]


def test_from_per_image_equals_columns() -> None:
    data = random_detection_set(2, n_images=6)
    targets, predictions = [], []
    for image in range(data.n_images):
        g, d = data.gt_image == image, data.dt_image == image
        targets.append(
            {
                "boxes": data.gt_boxes[g],
                "labels": data.gt_labels[g],
                "iscrowd": data.gt_iscrowd[g],
                "area": data.gt_area[g],
            }
        )
        predictions.append(
            {"boxes": data.dt_boxes[d], "labels": data.dt_labels[d], "scores": data.dt_scores[d]}
        )
    rebuilt = DetectionSet.from_per_image(targets, predictions)
    for side in ("gt", "dt"):
        order = np.argsort(getattr(data, f"{side}_image"), kind="stable")
        for name in ("image", "boxes", "labels"):
            np.testing.assert_array_equal(
                getattr(rebuilt, f"{side}_{name}"), getattr(data, f"{side}_{name}")[order]
            )
    # Ties are broken by image, then row within the image: grouping rows by image changes nothing.
    assert coco_evaluate(rebuilt).stats == coco_evaluate(data).stats
    no_extras = DetectionSet.from_per_image(
        [{"boxes": [[0, 0, 2, 2]], "labels": [1]}], [{"boxes": [], "labels": [], "scores": []}]
    )
    assert no_extras.gt_area.tolist() == [4.0] and not no_extras.gt_iscrowd.any()


def _columns(**changes) -> dict:
    base = {
        "n_images": 2, "gt_image": [0], "gt_boxes": [[0, 0, 1, 1]], "gt_labels": [1],
        "dt_image": [1], "dt_boxes": [[0, 0, 1, 1]], "dt_scores": [0.5], "dt_labels": [1],
    }  # fmt: skip
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gt_boxes": [[0, 0, 1]]}, "gt_boxes must have shape"),
        ({"dt_boxes": [[2, 0, 1, 1]]}, "dt_boxes must have x2 >= x1"),
        ({"dt_boxes": [[0, 0, np.nan, 1]]}, "dt_boxes must be finite"),
        ({"gt_labels": [-1]}, "gt_labels must be >= 0"),
        ({"gt_labels": [1.5]}, "gt_labels must hold integers"),
        ({"dt_image": [2]}, "dt_image must be in"),
        ({"dt_scores": [np.inf]}, "dt_scores must be finite"),
        ({"dt_scores": [0.5, 0.4]}, r"dt_scores must have shape \(1,\)"),
        ({"gt_iscrowd": [2]}, "gt_iscrowd must be boolean"),
        ({"gt_area": [np.nan]}, "gt_area must be finite"),
        ({"n_images": -1}, "n_images must be >= 0"),
    ],
)
def test_invalid_input_names_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DetectionSet(**_columns(**changes))


def test_arrays_are_read_only_and_params_checked() -> None:
    data = DetectionSet(**_columns())
    with pytest.raises(ValueError):
        data.gt_boxes[0, 0] = 3
    with pytest.raises(ConfigurationError, match="iou_thresholds"):
        coco_evaluate(data, iou_thresholds=[0.0, 0.5])
    with pytest.raises(ConfigurationError, match="max_dets"):
        coco_evaluate(data, max_dets=(1, 10))


def test_best_overlaps_equal_dense_pycocotools_iou() -> None:
    """Best overlaps against a dense pycocotools IoU matrix per image (first maximum wins)."""
    from pycocotools import mask

    data = random_detection_set(9, n_images=12)
    m = coco_evaluate(data).matching
    expected = {
        "dt_best": [np.zeros(data.n_dt), np.full(data.n_dt, -1)],
        "dt_best_any": [np.zeros(data.n_dt), np.full(data.n_dt, -1)],
        "gt_best": [np.zeros(data.n_gt), np.full(data.n_gt, -1)],
        "gt_best_any": [np.zeros(data.n_gt), np.full(data.n_gt, -1)],
    }
    for image in range(data.n_images):
        dts, gts = np.flatnonzero(data.dt_image == image), np.flatnonzero(data.gt_image == image)
        if not (len(dts) and len(gts)):
            continue
        iou = np.asarray(mask.iou(data.dt_xywh[dts].tolist(), data.gt_xywh[gts].tolist(), [0] * len(gts)))
        same = data.dt_labels[dts][:, None] == data.gt_labels[gts][None, :]
        objects = ~data.gt_iscrowd[gts][None, :]
        for name, values, rows, cols in (
            ("dt_best", np.where(same & objects, iou, 0.0), dts, gts),
            ("dt_best_any", np.where(objects, iou, 0.0), dts, gts),
            ("gt_best", np.where(same, iou, 0.0).T, gts, dts),
            ("gt_best_any", iou.T, gts, dts),
        ):
            best = values.max(axis=1)
            expected[name][0][rows] = best
            expected[name][1][rows] = np.where(best > 0, cols[values.argmax(axis=1)], -1)
    for name, (best, which) in expected.items():
        suffix = "_any" if name.endswith("_any") else ""
        other = "gt" if name.startswith("dt") else "dt"
        np.testing.assert_array_equal(getattr(m, f"{name[:2]}_best_iou{suffix}"), best)
        np.testing.assert_array_equal(getattr(m, f"{name[:2]}_best_{other}{suffix}"), which)
