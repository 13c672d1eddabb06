"""tide_errors against the tidecv package itself, on generated data."""

from __future__ import annotations

import numpy as np
import pytest

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks.detection2d.detection_set import DetectionSet
from ml_debugger.tasks.detection2d.tide import ERROR_TYPES, TideAnalysis, tide_errors

from .synthetic import random_detection_set, tidecv_data

tidecv = pytest.importorskip("tidecv")
from tidecv import TIDE
from tidecv.errors import main_errors

NAMES = {
    main_errors.ClassError: "cls",
    main_errors.BoxError: "loc",
    main_errors.OtherError: "both",
    main_errors.DuplicateError: "dupe",
    main_errors.BackgroundError: "bkg",
    main_errors.MissedError: "miss",
}


def _run_tidecv(data: DetectionSet, pos: float = 0.5, bg: float = 0.1):
    gt, preds = tidecv_data(data)
    run = TIDE(pos_threshold=pos, background_threshold=bg, mode=TIDE.BOX).evaluate(gt, preds)
    return run, preds


def _assert_equal_to_tidecv(ours: TideAnalysis, run, preds, data: DetectionSet) -> None:
    # mAP and dAPs (tidecv works in percent).
    assert ours.ap * 100 == pytest.approx(run.ap, abs=1e-6)
    expected = {
        **{
            name: lambda error=error: run.fix_main_errors(error_types=[error])[error]
            for error, name in NAMES.items()
        },
        "false_pos": lambda: run.fix_errors(transform=main_errors.FalsePositiveError.fix).get_mAP() - run.ap,
        "false_neg": lambda: run.fix_errors(false_neg_dict=run.false_negatives).get_mAP() - run.ap,
    }
    for name, compute in expected.items():
        try:
            value = compute()
        except ZeroDivisionError:  # no class left once fixed (e.g. every GT missed): NaN here
            value = float("nan")
        assert ours.dap[name] * 100 == pytest.approx(value, abs=1e-6, nan_ok=True), name
    assert ours.counts == {NAMES[error]: n for error, n in run.count_errors().items()}

    # Every detection and GT: type, related GT, ignore flag, the error chosen to recover a GT.
    dt_error = np.full(data.n_dt, "skipped", dtype=object)
    dt_gt = np.full(data.n_dt, -1)
    dt_ignored = np.zeros(data.n_dt, bool)
    gt_error = np.where(data.gt_iscrowd, "ignored", "none").astype(object)
    fixed_by = np.full(data.n_gt, -1)
    for pred in preds.annotations:
        if "used" in pred:  # evaluated (within the image's max_dets)
            dt_error[pred["_id"]] = "none" if pred["used"] else "?"
            dt_ignored[pred["_id"]] = pred["used"] is None
            if pred["used"]:
                dt_gt[pred["_id"]] = pred["matched_with"]
    for error in run.errors:
        name = NAMES[type(error)]
        if name == "miss":
            gt_error[error.gt["_id"]] = "miss"
            continue
        row = error.pred["_id"]
        dt_error[row] = name
        if name in ("cls", "loc"):
            dt_gt[row] = error.gt["_id"]
            if error.fixed[1] is not None:
                fixed_by[error.gt["_id"]] = row
                gt_error[error.gt["_id"]] = name
        elif name == "dupe":  # the GT already taken, i.e. the one its suppressor matched
            dt_gt[row] = error.suppressor["matched_with"]
    assert (ours.dt_error == dt_error.astype(str)).all()
    np.testing.assert_array_equal(ours.dt_gt, dt_gt)
    np.testing.assert_array_equal(ours.dt_ignored, dt_ignored)
    np.testing.assert_array_equal(ours.gt_fixed_by, fixed_by)
    np.testing.assert_array_equal(ours.gt_error, gt_error.astype(str))
    np.testing.assert_array_equal(ours.gt_missed, ~data.gt_iscrowd & (ours.gt_match < 0))
    tidecv_iou = {pred["_id"]: pred["iou"] for pred in preds.annotations if "used" in pred}
    np.testing.assert_allclose(ours.dt_iou[list(tidecv_iou)], list(tidecv_iou.values()), rtol=0, atol=0)


@pytest.mark.parametrize("tied_scores", [True, False])
@pytest.mark.parametrize("seed", range(5))
def test_equal_to_tidecv(seed: int, tied_scores: bool) -> None:
    data = random_detection_set(seed, tied_scores=tied_scores)
    ours = tide_errors(data)
    run, preds = _run_tidecv(data)
    _assert_equal_to_tidecv(ours, run, preds, data)


def test_generated_data_has_every_error_type() -> None:
    ours = tide_errors(random_detection_set(0, tied_scores=False))
    assert all(ours.counts[name] > 0 for name in ERROR_TYPES)
    assert all(value > 0 for value in ours.dap.values())
    assert ours.dt_ignored.any() and (ours.dt_error == "skipped").any()
    assert {"cls", "loc"} <= set(ours.gt_error.tolist())


@pytest.mark.parametrize(("pos", "bg"), [(0.75, 0.2), (0.3, 0.05)])
def test_other_thresholds(pos: float, bg: float) -> None:
    data = random_detection_set(7)
    run, preds = _run_tidecv(data, pos, bg)
    _assert_equal_to_tidecv(tide_errors(data, pos_threshold=pos, background_threshold=bg), run, preds, data)


def test_no_detections_and_no_ground_truth() -> None:
    full = random_detection_set(8)
    no_dt = DetectionSet(
        n_images=full.n_images, gt_image=full.gt_image, gt_boxes=full.gt_boxes, gt_labels=full.gt_labels,
        gt_iscrowd=full.gt_iscrowd, dt_image=[], dt_boxes=[], dt_scores=[], dt_labels=[],
    )  # fmt: skip
    run, preds = _run_tidecv(no_dt)
    ours = tide_errors(no_dt)
    _assert_equal_to_tidecv(ours, run, preds, no_dt)
    assert ours.ap == 0 and ours.counts["miss"] == (~full.gt_iscrowd).sum() and np.isnan(ours.dap["miss"])
    no_gt = DetectionSet(
        n_images=full.n_images, gt_image=[], gt_boxes=[], gt_labels=[],
        dt_image=full.dt_image, dt_boxes=full.dt_boxes, dt_scores=full.dt_scores, dt_labels=full.dt_labels,
    )  # fmt: skip
    run, preds = _run_tidecv(no_gt)
    ours = tide_errors(no_gt)
    _assert_equal_to_tidecv(ours, run, preds, no_gt)
    assert ours.counts["bkg"] == (ours.dt_error != "skipped").sum()
    # With nothing at all tidecv divides by zero; here the mAP is NaN and every dAP too.
    empty = DetectionSet(
        n_images=2,
        gt_image=[],
        gt_boxes=[],
        gt_labels=[],
        dt_image=[],
        dt_boxes=[],
        dt_scores=[],
        dt_labels=[],
    )
    nothing = tide_errors(empty)
    assert np.isnan(nothing.ap) and all(np.isnan(value) for value in nothing.dap.values())


def test_hand_made_image() -> None:
    """Detections of each error type by construction, two of them exactly on a threshold."""
    data = DetectionSet(
        n_images=3,
        gt_image=[0, 0, 2],
        gt_boxes=[[0, 0, 10, 10], [50, 50, 70, 70], [0, 0, 10, 100]],
        gt_labels=[1, 2, 2],
        dt_image=[0, 0, 0, 0, 0, 1, 2, 2],
        dt_boxes=[
            [0, 0, 10, 10],  # TP of GT 0
            [0, 0, 10, 9],  # duplicate of GT 0 (IoU 0.9)
            [50, 50, 70, 70],  # class 1 on the class-2 GT 1: cls
            [200, 200, 210, 210],  # nothing there: bkg
            [5, 0, 15, 10],  # class 1, IoU 1/3 with GT 0: loc
            [0, 0, 5, 5],  # image 1 has no GT: bkg
            [0, 0, 10, 10],  # IoU exactly 0.1 with the class-2 GT 2: bkg (<= 0.1)
            [0, 0, 10, 11],  # IoU 0.11 with it: both
        ],
        dt_scores=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2],
        dt_labels=[1, 1, 1, 1, 1, 1, 1, 1],
    )
    result = tide_errors(data)
    assert result.dt_error.tolist() == ["none", "dupe", "cls", "bkg", "loc", "bkg", "bkg", "both"]
    assert result.dt_gt.tolist() == [0, 0, 1, -1, 0, -1, -1, -1]
    assert result.gt_error.tolist() == ["none", "cls", "miss"]
    assert result.gt_fixed_by.tolist() == [-1, 2, -1]
    assert result.counts == {"cls": 1, "loc": 1, "both": 1, "dupe": 1, "bkg": 3, "miss": 1}
    run, preds = _run_tidecv(data)
    _assert_equal_to_tidecv(result, run, preds, data)


def test_parameters_are_checked() -> None:
    data = random_detection_set(0, n_images=2)
    with pytest.raises(ConfigurationError, match="pos_threshold"):
        tide_errors(data, pos_threshold=0)
    with pytest.raises(ConfigurationError, match="background_threshold"):
        tide_errors(data, background_threshold=0)
    with pytest.raises(ConfigurationError, match="max_dets"):
        tide_errors(data, max_dets=0)
