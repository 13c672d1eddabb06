"""The 3-D detection error codes (``D3D001`` ... ``D3D020``): the matching's error types, the
nuScenes TP errors of found objects, and range / sparsity specifics. Each rule reads the unit
table and reuses the shared object rules, so a unit's codes explain its category."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_debugger.evaluator.analysis import categories as shared
from ml_debugger.evaluator.analysis.codes import ErrorCode, register
from ml_debugger.tasks import _object_rules as rules
from ml_debugger.tasks.detection3d.categories import barely_found
from ml_debugger.tasks.detection3d.config import Detection3DConfig


class Detection3DCode(ErrorCode):
    """A 3-D detection code: classes affected are the units' ``object_class``."""

    task = "detection3d"

    def affected_classes(self, table: pd.DataFrame, mask: np.ndarray, config: Detection3DConfig) -> list[int]:
        values, counts = np.unique(table["object_class"].to_numpy(dtype=np.int64)[mask], return_counts=True)
        order = np.lexsort((values, -counts))
        return [int(v) for v in values[order][: config.max_affected_classes]]


def _typed(table: pd.DataFrame, *types: str) -> np.ndarray:
    return rules.wrong(table) & rules.error_type(table, *types)


def _found_with(table: pd.DataFrame, name: str, low: float, high: float = np.inf) -> np.ndarray:
    value = rules.column(table, name)
    return table["correct"].to_numpy(dtype=bool) & (value >= low) & (value < high)


@register
class ClassificationError(Detection3DCode):
    id = "D3D001"
    name = "classification_error"
    category = "critical_hotspot"
    description = "A detection of another class within match_distance of the object (the object's class is confused)."
    recommended_action = (
        "Open the confusion heatmap at the class pairs listed and the bird's-eye-view grid for where "
        "they happen; add examples that separate the classes (size and shape cues at range), and "
        "check the annotation guideline for the pair."
    )

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return _typed(table, "cls")


@register
class LocalizationError(Detection3DCode):
    id = "D3D002"
    name = "localization_error"
    category = "recessive_hotspot"
    description = "A detection of the right class between match_distance and near_distance of the object: found, but too far off."
    recommended_action = (
        "Check the box regression targets and the voxel / pillar size for these objects, and the "
        "calibration and time sync between sensors when errors grow with speed or range."
    )

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return _typed(table, "loc")


@register
class DuplicateDetection(Detection3DCode):
    id = "D3D003"
    name = "duplicate_detection"
    category = "recessive_hotspot"
    description = "A second detection of an object that a better detection already found (same class, within match_distance)."
    recommended_action = (
        "Tune the post-processing: BEV NMS threshold or circle NMS radius, max detections per "
        "frame, and check that validation uses the deployment's settings."
    )

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return _typed(table, "dupe")


@register
class BackgroundError(Detection3DCode):
    id = "D3D004"
    name = "background_error"
    category = "recessive_hotspot"
    description = "A detection with no object of its class within near_distance and none of another class within match_distance."
    recommended_action = (
        "Look at where they fire in the bird's-eye-view grid: ground, vegetation and reflections are "
        "common causes; add hard negatives and check whether some are unannotated objects (D3D014)."
    )

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return _typed(table, "bkg")


@register
class MissedObject(Detection3DCode):
    id = "D3D005"
    name = "missed_object"
    category = "recessive_hotspot"
    description = "No detection of any class near the object: it was not seen."
    recommended_action = (
        "Group the misses by range bin, class and points-in-box count; far and sparse objects point "
        "to the input (range, point density, voxel size), near and dense ones to missing training data."
    )

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return _typed(table, "miss")


@register
class FarRangeMiss(Detection3DCode):
    id = "D3D006"
    name = "far_range_miss"
    category = "recessive_hotspot"
    description = "A missed object at least far_range metres from the ego origin."
    recommended_action = (
        "Check that pc_range covers the distance, that far objects have enough points after "
        "voxelisation, and add range-aware augmentation or multi-sweep input for them."
    )

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return rules.wrong(table) & rules.is_object(table) & (rules.column(table, "range") >= config.far_range)


@register
class SparsePointsMiss(Detection3DCode):
    id = "D3D007"
    name = "sparse_points_miss"
    category = "recessive_hotspot"
    description = "A missed object with fewer than sparse_points LiDAR points inside its box (known counts only)."
    recommended_action = (
        "These objects are barely in the point cloud: use more sweeps, camera fusion, or lower the "
        "minimum points filter in training; consider excluding zero-point boxes from the targets."
    )

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        points = rules.column(table, "num_points")
        return rules.wrong(table) & rules.is_object(table) & (points >= 0) & (points < config.sparse_points)


@register
class LowScoreTruePositive(Detection3DCode):
    id = "D3D008"
    name = "low_score_true_positive"
    category = "recessive_hotspot"
    description = "Matched by a detection of its class, but scoring below the operating score: lost to the score threshold."
    recommended_action = "Check calibration per class and range, consider per-class score thresholds, add examples like them."

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return _typed(table, "low_score")


@register
class TranslationError(Detection3DCode):
    id = "D3D009"
    name = "translation_error"
    category = "operational_coverage"
    description = "Found, but the detection's centre is at least translation_error_max metres from the object's (nuScenes' trans_err)."
    recommended_action = "Inspect the centre regression for these classes and ranges; check sensor calibration and ego-motion compensation."

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return _found_with(table, "trans_err", config.translation_error_max)


@register
class ScaleError(Detection3DCode):
    id = "D3D010"
    name = "scale_error"
    category = "operational_coverage"
    description = "Found, but 1 - IoU of the boxes aligned at one centre and heading is at least scale_error_max (nuScenes' scale_err)."
    recommended_action = "Compare the predicted and annotated sizes per class; check anchor sizes and the size normalisation of the head."

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return _found_with(table, "scale_err", config.scale_error_max)


@register
class OrientationError(Detection3DCode):
    id = "D3D011"
    name = "orientation_error"
    category = "operational_coverage"
    description = "Found, but the heading differs by between orientation_error_max and flipped_heading radians (nuScenes' orient_err)."
    recommended_action = "Check the yaw encoding (sin/cos or bins) and yaw augmentation; look at which classes and ranges are affected."

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return _found_with(table, "orient_err", config.orientation_error_max, config.flipped_heading)


@register
class FlippedHeading(Detection3DCode):
    id = "D3D012"
    name = "flipped_heading"
    category = "operational_coverage"
    description = "Found, but facing the other way: the heading differs by at least flipped_heading radians (near pi)."
    recommended_action = (
        "The model cannot tell front from back: add a direction classifier (as PointPillars' dir_cls) "
        "or a yaw encoding without that ambiguity, and check the annotations' heading convention."
    )

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return _found_with(table, "orient_err", config.flipped_heading)


@register
class VelocityError(Detection3DCode):
    id = "D3D013"
    name = "velocity_error"
    category = "operational_coverage"
    description = "Found, but the velocity differs by at least velocity_error_max m/s (nuScenes' vel_err)."
    recommended_action = "Check the sweeps' timestamps and ego-motion compensation, and the velocity head's training on moving objects."

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return _found_with(table, "vel_err", config.velocity_error_max)


@register
class SuspectedMissingAnnotation(Detection3DCode):
    id = "D3D014"
    name = "suspected_missing_annotation"
    category = "aleatoric_hotspot"
    description = (
        "A confident (score >= confident_threshold) background detection made again in at least "
        "min_recurrence evaluated epochs at the same place: probably an object the annotators missed."
    )
    recommended_action = "Review these frames with the box drawn and add the missing annotations."

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return rules.suspected_missing_annotation(table, config)


@register
class SuspectedWrongLabel(Detection3DCode):
    id = "D3D015"
    name = "suspected_wrong_label"
    category = "aleatoric_hotspot"
    description = "An object confidently detected as another class at its place in at least min_recurrence evaluated epochs."
    recommended_action = "Re-check the class of these objects with the annotation guideline; the prediction is the candidate label."

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return rules.suspected_wrong_label(table, config)


@register
class ConfidentFalsePositive(Detection3DCode):
    id = "D3D016"
    name = "confident_false_positive"
    category = "critical_hotspot"
    description = "A false positive scoring at least confident_threshold: no score threshold removes it."
    recommended_action = "Review these first, highest score first; annotate real objects (D3D014), add the rest as hard negatives."

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return rules.wrong(table) & ~rules.is_object(table) & rules.confident(table, config)


@register
class ErrorClusterMember(Detection3DCode):
    id = "D3D017"
    name = "error_cluster_member"
    category = "hotspot"
    description = "In a hotspot cluster, or among neighbours (in feature space) that are mostly errors: a systematic weakness."
    recommended_action = "Open its cluster (get_hotspots) and the representative frames; collect or augment data for that slice."

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return shared.near_error_cluster(table, config)


@register
class UnstableAcrossEpochs(Detection3DCode):
    id = "D3D018"
    name = "unstable_across_epochs"
    category = "operational_coverage"
    description = "Found and lost at least unstable_min_flips times over the traced epochs, or lost after being found unstable_min_forgetting times."
    recommended_action = "Check these objects' boxes for ambiguity first; decay the learning rate or re-weight such examples."

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return rules.is_object(table) & rules.unstable(table, config)


@register
class OutOfCoverage(Detection3DCode):
    id = "D3D019"
    name = "out_of_coverage"
    category = "recessive_hotspot"
    description = "Farther in feature space from the reference (training) units than coverage_percentile_max percent of them are from theirs."
    recommended_action = "Check for a new sensor setup, weather or location; collect training frames like these."

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return shared.out_of_coverage(table, config)


@register
class BarelyFound(Detection3DCode):
    id = "D3D020"
    name = "barely_found"
    category = "operational_coverage"
    description = (
        "Found, but by a detection whose score is in the lowest score_margin share of the range from "
        "the operating score to 1, or with a translation, scale, orientation or velocity error: the next miss."
    )
    recommended_action = "Treat these as the next errors: add examples like them and watch them when moving the score threshold."

    def find(self, table: pd.DataFrame, config: Detection3DConfig) -> np.ndarray:
        return barely_found(table, config)
