"""Synthetic 3-D detection data and an adapter to the nuScenes devkit's own evaluation code.

``random_frame_set`` is small and nasty (every corner of the devkit's rules); ``nuscenes_sized_set``
is large and realistic (the benchmark). ``run_devkit`` hands the same rows, in the same order, to
``nuscenes.eval.detection``: ``EvalBoxes`` of ``DetectionBox`` built in memory, the devkit's own
``add_center_dist`` and ``filter_eval_boxes`` run against a stub database (ego poses from
``FrameSet.ego_xy``, no bike racks), then ``DetectionEval.evaluate`` itself.
"""

from __future__ import annotations

import numpy as np

from ml_debugger.tasks.detection3d.frame_set import FrameSet

NAMES = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle", "bicycle",
         "traffic_cone", "barrier")  # fmt: skip
# Labels are not the devkit's class order: the mapping is part of what is tested.
CLASS_NAMES = {7: "car", 2: "truck", 11: "bus", 0: "trailer", 5: "construction_vehicle", 3: "pedestrian",
               9: "motorcycle", 1: "bicycle", 4: "traffic_cone", 8: "barrier"}  # fmt: skip
LABEL_OF = {name: label for label, name in CLASS_NAMES.items()}
WLH = {"car": (1.95, 4.6, 1.7), "truck": (2.5, 6.9, 2.8), "bus": (2.9, 11.0, 3.5), "trailer": (2.9, 12.0, 3.9),
       "construction_vehicle": (2.8, 6.4, 3.2), "pedestrian": (0.67, 0.73, 1.77), "motorcycle": (0.77, 2.1, 1.47),
       "bicycle": (0.6, 1.7, 1.3), "traffic_cone": (0.41, 0.41, 1.07), "barrier": (2.5, 0.5, 0.98)}  # fmt: skip
FREQUENCY = {"car": 0.43, "truck": 0.08, "bus": 0.014, "trailer": 0.02, "construction_vehicle": 0.013,
             "pedestrian": 0.19, "motorcycle": 0.011, "bicycle": 0.01, "traffic_cone": 0.085, "barrier": 0.13}  # fmt: skip
ATTRIBUTES = {"pedestrian": ("pedestrian.moving", "pedestrian.sitting_lying_down", "pedestrian.standing"),
              "motorcycle": ("cycle.with_rider", "cycle.without_rider"),
              "bicycle": ("cycle.with_rider", "cycle.without_rider"),
              **{name: ("vehicle.moving", "vehicle.parked", "vehicle.stopped")
                 for name in ("car", "bus", "construction_vehicle", "trailer", "truck")}}  # fmt: skip
NO_GT_CLASS = "construction_vehicle"  # predicted, never in the ground truth
NO_DT_CLASS = "trailer"  # in the ground truth, never predicted


def random_frame_set(seed: int, n_frames: int = 30, max_gt: int = 40, max_dt: int = 120) -> FrameSet:
    """A small set that exercises every rule of the devkit's detection evaluation.

    Per frame 0-40 GTs of the nuScenes classes (one class never in the GT, one never
    predicted), up to 70 m away (beyond every class range), some with 0 points, some with NaN
    velocity or no attribute, some annotated twice; detections: jittered copies of GTs (tight,
    loose, far), flipped headings, wrong classes, duplicates, background boxes, a few with
    NaN velocity or score 0. A third of the frames are on a 1/8 m grid with scores on a 0.05
    grid: exact score ties, distances exactly equal to each other and to the thresholds, boxes
    exactly at a class range. Some frames have no GT, some no detection; the ego origin moves.
    """
    rng = np.random.default_rng(seed)
    gt_names = [n for n in NAMES if n != NO_GT_CLASS]
    gt_p = np.array([FREQUENCY[n] for n in gt_names]) + 0.03
    gt_rows, dt_rows = [], []
    ego = np.round(rng.uniform(-1.5, 1.5, (n_frames, 2)) * 8) / 8
    for frame in range(n_frames):
        grid = frame % 3 == 0
        n_gt = 0 if rng.random() < 0.1 else int(rng.integers(1, max_gt + 1))
        names = rng.choice(gt_names, n_gt, p=gt_p / gt_p.sum()).astype(object)
        centre = ego[frame] + _polar(rng, rng.uniform(0, 70, n_gt))
        if grid:
            centre = np.round(centre * 8) / 8
            at_range = rng.random(n_gt) < 0.1  # exactly on the class range (filtered: the test is <)
            centre[at_range] = ego[frame] + np.column_stack([[_range(n) for n in names[at_range]], np.zeros(at_range.sum())])
        wlh = np.array([WLH[n] for n in names]).reshape(-1, 3) * rng.uniform(0.8, 1.2, (n_gt, 3))
        yaw = rng.uniform(-np.pi, np.pi, n_gt) + np.where(rng.random(n_gt) < 0.1, 2 * np.pi, 0)
        boxes = np.column_stack([centre, rng.uniform(-1, 2, n_gt), wlh, yaw])
        velocity = rng.normal(0, 3, (n_gt, 2))
        velocity[rng.random(n_gt) < 0.15] = np.nan
        points = np.where(rng.random(n_gt) < 0.1, 0, rng.integers(1, 500, n_gt))
        attributes = [_gt_attribute(rng, n) for n in names]
        twice = np.r_[np.arange(n_gt), np.flatnonzero(rng.random(n_gt) < 0.05)]
        for i in twice:
            gt_rows.append((frame, boxes[i], LABEL_OF[names[i]], velocity[i], int(points[i]), attributes[i]))
        n_dt = 0 if rng.random() < 0.1 else int(rng.integers(0, max_dt + 1))
        for row in _detections(rng, boxes[twice], names[twice], velocity[twice], n_dt, ego[frame], grid):
            dt_rows.append((frame, *row))
    return _assemble(n_frames, gt_rows, dt_rows, ego)


def _polar(rng: np.random.Generator, radius: np.ndarray) -> np.ndarray:
    angle = rng.uniform(-np.pi, np.pi, len(radius))
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])


def _range(name: str) -> float:
    return {"car": 50.0, "truck": 50.0, "bus": 50.0, "trailer": 50.0, "construction_vehicle": 50.0,
            "pedestrian": 40.0, "motorcycle": 40.0, "bicycle": 40.0}.get(name, 30.0)  # fmt: skip


def _gt_attribute(rng: np.random.Generator, name: str) -> str:
    options = ATTRIBUTES.get(name, ())
    return "" if not options or rng.random() < 0.05 else str(rng.choice(options))


def _detections(
    rng: np.random.Generator,
    gt_boxes: np.ndarray,
    gt_names: np.ndarray,
    gt_velocity: np.ndarray,
    n: int,
    ego: np.ndarray,
    grid: bool,
) -> list[tuple]:
    # kinds: 0 tight, 1 loose, 2 far (1-5 m), 3 flipped heading, 4 exact offset, 5 background
    kind = rng.choice(6, n, p=[0.3, 0.15, 0.1, 0.05, 0.1, 0.3]) if len(gt_boxes) else np.full(n, 5)
    source = rng.integers(0, max(len(gt_boxes), 1), n)
    boxes = gt_boxes[source].copy() if len(gt_boxes) else np.zeros((n, 7))
    names = gt_names[source].copy() if len(gt_boxes) else rng.choice(NAMES, n).astype(object)
    velocity = gt_velocity[source].copy() if len(gt_boxes) else np.zeros((n, 2))
    shift = np.array([0.15, 0.6, 2.5, 0.2, 0.0, 0.0])[kind]
    boxes[:, :2] += _polar(rng, np.abs(rng.normal(0, 1, n)) * shift) + np.where(kind == 2, 1.0, 0.0)[:, None]
    exact = kind == 4  # an offset of exactly 0.5, 1, 2 or 4 m along an axis (on a threshold: no match)
    boxes[exact, int(rng.integers(0, 2))] += rng.choice([0.5, 1.0, 2.0, 4.0, 0.25], exact.sum())
    boxes[:, 3:6] *= rng.uniform(0.85, 1.15, (n, 3)) ** np.where(kind == 5, 0, 1)[:, None]
    boxes[:, 6] += rng.normal(0, 0.15, n) + np.where(kind == 3, np.pi, 0.0)
    background = kind == 5
    names[background] = rng.choice(NAMES, background.sum())
    boxes[background, :2] = ego + _polar(rng, rng.uniform(0, 65, background.sum()))
    boxes[background, 3:6] = np.array([WLH[name] for name in names[background]]).reshape(-1, 3)
    if grid:
        boxes[:, :2] = np.round(boxes[:, :2] * 8) / 8
    velocity = np.nan_to_num(velocity) + rng.normal(0, 0.5, (n, 2))
    velocity[rng.random(n) < 0.03] = np.nan
    wrong = (rng.random(n) < 0.1) | (names == NO_DT_CLASS)
    names[wrong] = rng.choice([name for name in NAMES if name != NO_DT_CLASS], wrong.sum())
    names[rng.random(n) < 0.02] = NO_GT_CLASS
    quality = np.array([2.0, 0.5, -0.5, 0.8, 0.3, -1.5])[kind]
    scores = 1 / (1 + np.exp(-(quality + rng.normal(0, 1, n))))
    scores = np.round(scores * 20) / 20 if grid else scores
    scores[rng.random(n) < 0.02] = 0.0
    duplicate = np.r_[np.arange(n), np.flatnonzero(rng.random(n) < 0.05)]
    rows = []
    for i in duplicate:
        options = ATTRIBUTES.get(str(names[i]), ())
        attribute = str(rng.choice(options)) if options and rng.random() < 0.9 else ""
        rows.append((boxes[i], LABEL_OF[str(names[i])], float(scores[i]), velocity[i], attribute))
    return rows


def _assemble(n_frames: int, gt_rows: list[tuple], dt_rows: list[tuple], ego: np.ndarray) -> FrameSet:
    gt = list(zip(*gt_rows)) if gt_rows else [[], np.zeros((0, 7)), [], np.zeros((0, 2)), [], []]
    dt = list(zip(*dt_rows)) if dt_rows else [[], np.zeros((0, 7)), [], [], np.zeros((0, 2)), []]
    return FrameSet(
        n_frames=n_frames,
        gt_frame=np.array(gt[0], np.int64),
        gt_boxes=np.array(gt[1], np.float64).reshape(-1, 7),
        gt_labels=np.array(gt[2], np.int64),
        gt_velocities=np.array(gt[3], np.float64).reshape(-1, 2),
        gt_num_points=np.array(gt[4], np.int64),
        gt_attributes=list(gt[5]),
        dt_frame=np.array(dt[0], np.int64),
        dt_boxes=np.array(dt[1], np.float64).reshape(-1, 7),
        dt_labels=np.array(dt[2], np.int64),
        dt_scores=np.array(dt[3], np.float64),
        dt_velocities=np.array(dt[4], np.float64).reshape(-1, 2),
        dt_attributes=list(dt[5]),
        ego_xy=ego,
    )


def nuscenes_sized_set(seed: int = 0, n_frames: int = 600, gt_per_frame: int = 40, dt_per_frame: int = 500) -> FrameSet:
    """A nuScenes-val-like set: per frame Poisson(``gt_per_frame``) GTs with nuScenes' class mix
    within 60 m, and exactly ``dt_per_frame`` detections (a CenterPoint-like output: 1-3
    jittered hits per GT, the rest low-scoring clutter), velocities, attributes, point counts."""
    rng = np.random.default_rng(seed)
    p = np.array([FREQUENCY[n] for n in NAMES])
    sizes = np.array([WLH[n] for n in NAMES])
    gt_frame = np.repeat(np.arange(n_frames), rng.poisson(gt_per_frame, n_frames))
    n_gt = len(gt_frame)
    gt_class = rng.choice(len(NAMES), n_gt, p=p / p.sum())
    gt_boxes = np.column_stack([_polar(rng, 60 * np.sqrt(rng.random(n_gt))), rng.normal(0, 0.5, n_gt),
                                sizes[gt_class] * rng.uniform(0.9, 1.1, (n_gt, 3)), rng.uniform(-np.pi, np.pi, n_gt)])  # fmt: skip
    gt_velocity = rng.normal(0, 3, (n_gt, 2))
    gt_velocity[rng.random(n_gt) < 0.1] = np.nan
    points = np.where(rng.random(n_gt) < 0.05, 0, rng.integers(1, 2000, n_gt))
    # Hits: 1-3 per GT, at most dt_per_frame per frame; clutter fills each frame up to dt_per_frame.
    hit = np.repeat(np.arange(n_gt), rng.integers(1, 4, n_gt))
    first = np.searchsorted(gt_frame[hit], np.arange(n_frames))
    hit = hit[np.arange(len(hit)) - first[gt_frame[hit]] < dt_per_frame]
    n_clutter = dt_per_frame - np.bincount(gt_frame[hit], minlength=n_frames)
    clutter_frame = np.repeat(np.arange(n_frames), n_clutter)
    m = len(clutter_frame)
    clutter_class = rng.choice(len(NAMES), m, p=p / p.sum())
    hit_boxes = gt_boxes[hit].copy()
    hit_boxes[:, :2] += rng.normal(0, 0.4, (len(hit), 2))
    hit_boxes[:, 3:6] *= rng.uniform(0.85, 1.15, (len(hit), 3))
    hit_boxes[:, 6] += rng.normal(0, 0.2, len(hit))
    clutter_boxes = np.column_stack([_polar(rng, 60 * np.sqrt(rng.random(m))), np.zeros(m), sizes[clutter_class],
                                     rng.uniform(-np.pi, np.pi, m)])  # fmt: skip
    dt_frame = np.concatenate([gt_frame[hit], clutter_frame])
    by_frame = np.argsort(dt_frame, kind="stable")
    dt_class = np.concatenate([gt_class[hit], clutter_class])[by_frame]
    dt_velocity = np.nan_to_num(np.concatenate([gt_velocity[hit], np.zeros((m, 2))])) + rng.normal(0, 0.5, (len(dt_frame), 2))
    return FrameSet(
        n_frames=n_frames,
        gt_frame=gt_frame,
        gt_boxes=gt_boxes,
        gt_labels=np.array([LABEL_OF[n] for n in NAMES])[gt_class],
        gt_velocities=gt_velocity,
        gt_num_points=points,
        gt_attributes=_attributes(rng, gt_class, missing=0.05),
        dt_frame=dt_frame[by_frame],
        dt_boxes=np.concatenate([hit_boxes, clutter_boxes])[by_frame],
        dt_scores=np.concatenate([rng.beta(5, 2, len(hit)), rng.beta(1, 12, m)])[by_frame],
        dt_labels=np.array([LABEL_OF[n] for n in NAMES])[dt_class],
        dt_velocities=dt_velocity[by_frame],
        dt_attributes=_attributes(rng, dt_class, missing=0.0),
    )


def _attributes(rng: np.random.Generator, classes: np.ndarray, missing: float) -> np.ndarray:
    """A random attribute of each row's class (``""`` for classes without, and with probability ``missing``)."""
    out = np.full(len(classes), "", dtype=object)
    for c, name in enumerate(NAMES):
        rows = np.flatnonzero((classes == c) & (rng.random(len(classes)) >= missing))
        if ATTRIBUTES.get(name):
            out[rows] = rng.choice(ATTRIBUTES[name], len(rows))
    return out


class _StubNuScenes:
    """What ``add_center_dist`` and ``filter_eval_boxes`` read from a ``NuScenes`` database.

    Sample tokens are ``"<frame>"``; each frame's ego pose is ``(ego_x, ego_y, 0)`` in the boxes'
    coordinates, and no frame has bicycle-rack annotations.
    """

    def __init__(self, ego_xy: np.ndarray) -> None:
        self.ego_xy = ego_xy

    def get(self, table: str, token: str) -> dict:
        if table == "sample":
            return {"data": {"LIDAR_TOP": token}, "anns": []}
        if table == "sample_data":
            return {"ego_pose_token": token}
        if table == "ego_pose":
            x, y = self.ego_xy[int(token)].tolist()
            return {"translation": [x, y, 0.0]}
        raise KeyError(table)


def devkit_boxes(frames: FrameSet, class_names: dict[int, str]):
    """GT and prediction ``EvalBoxes`` of ``DetectionBox`` (every frame registered, rows in order), and each box's row."""
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.detection.data_classes import DetectionBox
    from pyquaternion import Quaternion

    row_of = {}
    out = []
    for side in ("gt", "dt"):
        boxes = EvalBoxes()
        per_frame: list[list] = [[] for _ in range(frames.n_frames)]
        columns = zip(
            getattr(frames, f"{side}_frame").tolist(), getattr(frames, f"{side}_boxes").tolist(),
            getattr(frames, f"{side}_labels").tolist(), getattr(frames, f"{side}_velocities").tolist(),
            getattr(frames, f"{side}_attributes").tolist(),
            frames.gt_num_points.tolist() if side == "gt" else frames.dt_scores.tolist(),
        )  # fmt: skip
        for row, (frame, (cx, cy, cz, w, l, h, yaw), label, velocity, attribute, extra) in enumerate(columns):
            box = DetectionBox(
                sample_token=str(frame),
                translation=(cx, cy, cz),
                size=(w, l, h),
                rotation=tuple(Quaternion(axis=[0.0, 0.0, 1.0], radians=yaw).elements.tolist()),
                velocity=tuple(velocity),
                detection_name=class_names[label],
                attribute_name=attribute,
                **({"num_pts": int(extra)} if side == "gt" else {"detection_score": float(extra)}),
            )
            row_of[id(box)] = (side, row)
            per_frame[frame].append(box)
        for frame, frame_boxes in enumerate(per_frame):
            boxes.add_boxes(str(frame), frame_boxes)
        out.append(boxes)
    return out[0], out[1], row_of


def devkit_config(class_order: list[str], **changes):
    from nuscenes.eval.detection.data_classes import DetectionConfig

    ranges = {"car": 50, "truck": 50, "bus": 50, "trailer": 50, "construction_vehicle": 50, "pedestrian": 40,
              "motorcycle": 40, "bicycle": 40, "traffic_cone": 30, "barrier": 30}  # fmt: skip
    settings = {"class_range": {name: ranges[name] for name in class_order}, "dist_fcn": "center_distance",
                "dist_ths": [0.5, 1.0, 2.0, 4.0], "dist_th_tp": 2.0, "min_recall": 0.1, "min_precision": 0.1,
                "max_boxes_per_sample": 500, "mean_ap_weight": 5}  # fmt: skip
    settings.update(changes)
    return DetectionConfig(**settings)


def devkit_evaluation(frames: FrameSet, class_names: dict[int, str], config=None):
    """A ``DetectionEval`` as its ``__init__`` leaves it (boxes loaded, ego distances added, filtered), and each box's row."""
    from nuscenes.eval.common.loaders import add_center_dist, filter_eval_boxes
    from nuscenes.eval.detection.evaluate import DetectionEval

    config = config or devkit_config([class_names[label] for label in sorted(class_names)])
    gt, pred, row_of = devkit_boxes(frames, class_names)
    nusc = _StubNuScenes(frames.ego_xy)
    boxes = []
    for side in (pred, gt):
        side = add_center_dist(nusc, side)
        if side.all:  # filter_eval_boxes needs at least one box to find the class field
            side = filter_eval_boxes(nusc, side, config.class_range)
        boxes.append(side)
    evaluation = object.__new__(DetectionEval)
    evaluation.cfg, evaluation.verbose = config, False
    evaluation.pred_boxes, evaluation.gt_boxes = boxes
    return evaluation, row_of


def run_devkit(frames: FrameSet, class_names: dict[int, str], config=None):
    """``DetectionEval``'s filtering and ``evaluate()`` on ``frames``: (metrics, metric data list, gt, pred, row_of)."""
    evaluation, row_of = devkit_evaluation(frames, class_names, config)
    metrics, data = evaluation.evaluate()
    return metrics, data, evaluation.gt_boxes, evaluation.pred_boxes, row_of


def devkit_matches(frames: FrameSet, class_names: dict[int, str], dist_th: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-object matches made by the devkit's own ``accumulate`` loop, read through its distance function.

    ``accumulate`` calls ``dist_fcn(gt, pred)`` for each not-yet-taken GT of the class in the
    prediction's frame, in turn, and takes the first smallest distance if it is ``< dist_th``.
    """
    from nuscenes.eval.common.utils import center_distance
    from nuscenes.eval.detection.algo import accumulate

    _, _, gt, pred, row_of = run_devkit(frames, class_names)
    dt_match, gt_match = np.full(frames.n_dt, -1), np.full(frames.n_gt, -1)
    for name in class_names.values():
        calls: list[tuple[int, int, float]] = []

        def recording(gt_box, pred_box, calls=calls):
            distance = center_distance(gt_box, pred_box)
            calls.append((row_of[id(pred_box)][1], row_of[id(gt_box)][1], distance))
            return distance

        accumulate(gt, pred, name, recording, dist_th)
        best: dict[int, tuple[float, int]] = {}
        for dt, g, distance in calls:  # calls of one prediction are consecutive; keep the first minimum
            if dt not in best or distance < best[dt][0]:
                best[dt] = (distance, g)
        for dt, (distance, g) in best.items():
            if distance < dist_th:
                dt_match[dt], gt_match[g] = g, dt
    return dt_match, gt_match
