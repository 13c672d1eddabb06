"""TIDE error analysis (Bolya et al., ECCV 2020) in box mode, as the ``tidecv`` package computes it.

Per image, tidecv keeps the ``max_dets`` highest-scoring detections (over all classes; stable
sort, ties keep row order) and:

1. **Matches** them greedily in score order: a detection takes the unmatched non-crowd GT of
   its class with the highest IoU if that IoU is ``>= pos_threshold`` (ties: the first GT row).
   Crowd GTs are ignore regions: an unmatched detection whose crowd IoU (intersection over its
   own area) with a crowd of its class is ``> pos_threshold`` is *ignored* (not counted in AP,
   but still given an error type, as tidecv does).
2. **Classifies** every unmatched detection by the first rule that holds (IoUs with non-crowd
   GTs of the image; "used" means matched in step 1):
   ``loc`` if ``bg <= max IoU with its class <= pos``; ``cls`` if ``max IoU with another class
   >= pos``; ``dupe`` if ``max IoU with a used GT of its class >= pos``; ``bkg`` if ``max IoU
   with any GT <= bg``; else ``both``. An image without non-crowd GT makes them all ``bkg``.
3. A non-crowd GT left unmatched is a false negative; it is ``miss`` unless some ``cls`` or
   ``loc`` error points at it. Among those errors, the highest-scoring one (first in score
   order) is the one that fixing would turn into a true positive; fixing the others removes them.
4. **dAP** of a type is the gain in mAP@``pos_threshold`` when only errors of that type are
   fixed (``cls`` / ``loc``: the chosen error becomes a true positive of its GT's class, other
   ``cls`` / ``loc`` errors of that type disappear; ``both``, ``dupe``, ``bkg``: the detection
   disappears; ``miss``: the GT no longer counts), clipped at 0. ``false_pos``: every false
   positive scored below every true positive; ``false_neg``: every false negative removed from
   the GT count (neither clipped).

AP is tidecv's: per class, points sorted by descending score (stable in tidecv's insertion
order), precision ``tp / (tp + fp)`` made non-increasing from the right, read at recalls
``i / 100``; a class that has detections but no GT scores 0; mAP is the mean over classes with
any point or GT. Values here are fractions in [0, 1]; tidecv prints them multiplied by 100.

Tied scores, reproduced as they are: tidecv's ``fix_errors`` lists every point that comes from
an error before every true positive, while its baseline interleaves them by image, so among
equal scores a "fixed" AP meets the false positives first. With many ties this alone lowers
the fixed mAPs (on the test data with scores on a 0.05 grid, fixing nothing already costs about
3 AP points), which every dAP inherits and the clipping at 0 can hide. Continuous scores are
unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks.detection2d.detection_set import DetectionSet
from ml_debugger.tasks.detection2d.matching import (
    best_per_segment,
    greedy_match,
    group_rank,
    overlapping_pairs,
    segment_starts,
)

__all__ = ["DT_OUTCOMES", "ERROR_TYPES", "GT_OUTCOMES", "SPECIAL_ERROR_TYPES", "TideAnalysis", "tide_errors"]

ERROR_TYPES = ("cls", "loc", "both", "dupe", "bkg", "miss")  # tidecv's Cls, Loc, Both, Dupe, Bkg, Miss
SPECIAL_ERROR_TYPES = ("false_pos", "false_neg")  # tidecv's FalsePos, FalseNeg
DT_OUTCOMES = ("none", "cls", "loc", "both", "dupe", "bkg", "skipped")
GT_OUTCOMES = ("none", "miss", "cls", "loc", "ignored")
_RECALLS = np.arange(101) / 100  # tidecv's [x / 100 for x in range(101)]


@dataclass(frozen=True, eq=False)
class TideAnalysis:
    """Result of ``tide_errors``.

    - ``ap``: mAP@``pos_threshold`` as tidecv computes it (NaN if there is no class at all).
    - ``dap``: dAP per type of ``ERROR_TYPES`` and ``SPECIAL_ERROR_TYPES``.
    - ``counts``: number of errors of each type of ``ERROR_TYPES`` (crowd-ignored detections
      included, as in tidecv).
    - ``dt_error``: one of ``DT_OUTCOMES``: ``none`` for a true positive, an error type, or
      ``skipped`` beyond the image's ``max_dets`` best detections (tidecv drops those).
    - ``dt_gt``: the GT row a detection relates to: matched (``none``), same class (``loc``,
      ``dupe``: the GT already taken), other class (``cls``); -1 otherwise.
    - ``dt_ignored``: unmatched and inside a crowd region of its class (not counted in AP).
    - ``dt_iou``: highest IoU with a non-crowd GT of its image and class (tidecv's ``pred['iou']``;
      0 for ``skipped``).
    - ``gt_match``: detection row matched to the GT, or -1.
    - ``gt_missed``: a non-crowd GT left unmatched (a false negative).
    - ``gt_error``: one of ``GT_OUTCOMES``: ``none`` (matched), ``miss``, ``cls`` / ``loc`` (a
      false negative that the chosen ``cls`` / ``loc`` error would recover), ``ignored`` (crowd).
    - ``gt_fixed_by``: that chosen detection row, or -1.
    """

    ap: float
    dap: dict[str, float]
    counts: dict[str, int]
    dt_error: np.ndarray
    dt_gt: np.ndarray
    dt_ignored: np.ndarray
    dt_iou: np.ndarray
    gt_match: np.ndarray
    gt_missed: np.ndarray
    gt_error: np.ndarray
    gt_fixed_by: np.ndarray


def tide_errors(
    data: DetectionSet, *, pos_threshold: float = 0.5, background_threshold: float = 0.1, max_dets: int = 100
) -> TideAnalysis:
    """TIDE errors and dAPs of ``data`` (box mode), equal to tidecv's (see the module doc).

    ``0 < pos_threshold <= 1`` and ``background_threshold > 0`` (at 0, tidecv would relate
    detections that overlap nothing to an arbitrary GT); ``max_dets >= 1`` per image.
    """
    pos, bg = float(pos_threshold), float(background_threshold)
    if not 0 < pos <= 1:
        raise ConfigurationError(f"pos_threshold must be in (0, 1]; got {pos_threshold!r}")
    if not bg > 0:
        raise ConfigurationError(f"background_threshold must be > 0; got {background_threshold!r}")
    if int(max_dets) < 1:
        raise ConfigurationError(f"max_dets must be >= 1; got {max_dets!r}")
    n_dt, n_gt = data.n_dt, data.n_gt
    image_rank = group_rank((data.dt_image,), data.dt_scores)
    evaluated = image_rank < int(max_dets)
    pairs = overlapping_pairs(data, np.flatnonzero(evaluated))
    objects = ~data.gt_iscrowd[pairs.gt]
    same = data.dt_labels[pairs.dt] == data.gt_labels[pairs.gt]

    # 1. Matching (rank within (image, class) orders a class's detections as the image's order does).
    m = np.flatnonzero(objects & same)
    m_dt, m_gt, m_iou = pairs.dt[m], pairs.gt[m], pairs.iou[m]
    order = np.lexsort((-m_gt, m_iou, m_dt))
    starts = segment_starts(m_dt[order])
    preference = np.empty(len(m), np.int64)
    preference[order] = np.arange(len(m)) - np.repeat(starts, np.diff(np.r_[starts, len(m)]))
    found = greedy_match(
        m_dt,
        m_gt,
        m_iou,
        preference[:, None],
        np.array([pos]),
        group_rank((data.dt_image, data.dt_labels), data.dt_scores),
        np.zeros(n_gt, bool),
    )
    dt_match = np.full(n_dt, -1, np.int64)
    dt_match[found.dt] = found.gt
    gt_match = np.full(n_gt, -1, np.int64)
    gt_match[found.gt] = found.dt
    tp, gt_used = dt_match >= 0, gt_match >= 0
    crowd_hit = np.flatnonzero(~objects & same & (pairs.crowd_iou > pos))
    ignored = np.zeros(n_dt, bool)
    ignored[pairs.dt[crowd_hit]] = True
    ignored &= ~tp

    # 2. Error types of unmatched detections, in tidecv's order of tests.
    def best(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return best_per_segment(pairs.dt[mask], pairs.iou[mask], pairs.gt[mask], n_dt)

    same_iou, same_gt = best(objects & same)
    other_iou, other_gt = best(objects & ~same)
    used_iou, used_gt = best(objects & same & gt_used[pairs.gt])
    any_iou, _ = best(objects)
    unmatched = evaluated & ~tp
    loc = unmatched & (bg <= same_iou) & (same_iou <= pos)
    cls = unmatched & ~loc & (other_iou >= pos)
    dupe = unmatched & ~loc & ~cls & (used_iou >= pos)
    bkg = unmatched & ~loc & ~cls & ~dupe & (any_iou <= bg)
    both = unmatched & ~loc & ~cls & ~dupe & ~bkg
    dt_gt = np.select([tp, loc, cls, dupe], [dt_match, same_gt, other_gt, used_gt], -1)

    # 3. The error chosen to recover each unmatched GT; the others are missed.
    fixable = np.flatnonzero(loc | cls)
    fixable = fixable[~gt_used[dt_gt[fixable]]]
    fixable = fixable[np.lexsort((image_rank[fixable], dt_gt[fixable]))]
    first = segment_starts(dt_gt[fixable])
    gt_fixed_by = np.full(n_gt, -1, np.int64)
    gt_fixed_by[dt_gt[fixable[first]]] = fixable[first]
    chosen = np.zeros(n_dt, bool)
    chosen[fixable[first]] = True
    false_neg = ~data.gt_iscrowd & ~gt_used
    missed = false_neg & (gt_fixed_by < 0)

    dt_error = np.select([tp, cls, loc, both, dupe, bkg], list(DT_OUTCOMES[:-1]), DT_OUTCOMES[-1]).astype(
        f"<U{max(map(len, DT_OUTCOMES))}"
    )
    by_cls = np.zeros(n_gt, bool)
    by_cls[dt_gt[fixable[first]]] = cls[fixable[first]]
    gt_error = np.select(
        [gt_used, missed, by_cls, false_neg], ["none", "miss", "cls", "loc"], "ignored"
    ).astype(f"<U{max(map(len, GT_OUTCOMES))}")
    counts = {name: int(mask.sum()) for name, mask in zip(ERROR_TYPES, (cls, loc, both, dupe, bkg, missed))}

    # 4. dAPs.
    ap, dap = _daps(data, evaluated, ignored, tp, dt_error, chosen, dt_gt, missed, false_neg)
    return TideAnalysis(
        ap=ap,
        dap=dap,
        counts=counts,
        dt_error=dt_error,
        dt_gt=dt_gt,
        dt_ignored=ignored,
        dt_iou=same_iou,
        gt_match=gt_match,
        gt_missed=false_neg,
        gt_error=gt_error,
        gt_fixed_by=gt_fixed_by,
    )


def _daps(
    data: DetectionSet,
    evaluated: np.ndarray,
    ignored: np.ndarray,
    tp: np.ndarray,
    dt_error: np.ndarray,
    chosen: np.ndarray,
    dt_gt: np.ndarray,
    missed: np.ndarray,
    false_neg: np.ndarray,
) -> tuple[float, dict[str, float]]:
    """Baseline mAP and every dAP, each mAP recomputed on the points tidecv's ``fix_errors`` builds.

    Tie order matters when scores are equal: the baseline lists points by image and score rank;
    ``fix_errors`` lists the points coming from errors first, then the true positives.
    """
    counted = evaluated & ~ignored
    classes = np.unique(np.r_[data.gt_labels[~data.gt_iscrowd], data.dt_labels[counted]])
    dt_k = np.searchsorted(classes, data.dt_labels)
    gt_k = np.searchsorted(classes, data.gt_labels)
    n_pos = np.bincount(gt_k[~data.gt_iscrowd], minlength=len(classes))
    sequence = np.empty(data.n_dt, np.int64)
    sequence[np.lexsort((-data.dt_scores, data.dt_image))] = np.arange(data.n_dt)

    tps, fps = np.flatnonzero(tp), np.flatnonzero(counted & ~tp)

    def fixed_map(
        kept_fps: np.ndarray, recovered: np.ndarray, n_gt: np.ndarray, false_pos: bool = False
    ) -> float:
        error_points = np.r_[kept_fps, recovered]
        k = np.r_[dt_k[kept_fps], gt_k[dt_gt[recovered]], dt_k[tps]]
        is_tp = np.r_[np.zeros(len(kept_fps), bool), np.ones(len(recovered) + len(tps), bool)]
        score = is_tp.astype(np.float64) if false_pos else data.dt_scores[np.r_[error_points, tps]]
        return _tide_map(k, score, is_tp, np.r_[sequence[error_points], sequence[tps] + data.n_dt], n_gt)

    base = _tide_map(dt_k[counted], data.dt_scores[counted], tp[counted], sequence[counted], n_pos)
    nothing = np.zeros(0, np.int64)
    dap = {}
    for name in ERROR_TYPES:
        if name == "miss":
            value = fixed_map(fps, nothing, n_pos - np.bincount(gt_k[missed], minlength=len(classes)))
        else:
            recovered = np.flatnonzero(chosen & (dt_error == name)) if name in ("cls", "loc") else nothing
            value = fixed_map(fps[dt_error[fps] != name], recovered, n_pos)
        dap[name] = max(value - base, 0.0)
    dap["false_pos"] = fixed_map(fps, nothing, n_pos, false_pos=True) - base
    dap["false_neg"] = (
        fixed_map(fps, nothing, n_pos - np.bincount(gt_k[false_neg], minlength=len(classes))) - base
    )
    return base, dap


def _tide_map(
    k: np.ndarray, score: np.ndarray, is_tp: np.ndarray, tiebreak: np.ndarray, n_pos: np.ndarray
) -> float:
    """tidecv's ``ClassedAPDataObject.get_mAP`` on points (class index, score, true positive).

    ``tiebreak`` orders points of equal score (tidecv's insertion order). Classes count if they
    have a point or a non-zero GT count; a class without GT scores 0.
    """
    n_classes, n_rec = len(n_pos), len(_RECALLS)
    order = np.lexsort((tiebreak, -score, k))
    k, is_tp = k[order], is_tp[order]
    included = (np.bincount(k, minlength=n_classes) > 0) | (n_pos != 0)
    if not included.any():
        return float("nan")
    starts = segment_starts(k)
    first = np.repeat(starts, np.diff(np.r_[starts, len(k)])) if len(k) else np.zeros(0, np.int64)
    cum_tp, cum_fp = np.cumsum(is_tp), np.cumsum(~is_tp)
    pos = np.flatnonzero(is_tp)
    before = first[pos] - 1
    has_before = before >= 0
    tp_n = (cum_tp[pos] - np.where(has_before, cum_tp[before], 0)).astype(np.float64)
    fp_n = (cum_fp[pos] - np.where(has_before, cum_fp[before], 0)).astype(np.float64)
    kk = k[pos]
    precision = tp_n / (tp_n + fp_n)
    reached = np.searchsorted(_RECALLS, tp_n / n_pos[kk], side="right")
    key = kk * (n_rec + 1) + reached
    best = np.zeros(n_classes * (n_rec + 1))
    key_starts = segment_starts(key)
    if len(key):
        best[key[key_starts]] = np.maximum.reduceat(precision, key_starts)
    interpolated = np.maximum.accumulate(best.reshape(n_classes, n_rec + 1)[:, ::-1], axis=1)[:, ::-1][:, 1:]
    return float(interpolated.mean(axis=1)[included].mean())
