"""The 2-D detection error codes (``DET001`` ... ``DET016``): TIDE's error types and the specifics
that tell a user what to do. Each rule reads the unit table and reuses the category rules."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_debugger.evaluator.analysis import categories as shared
from ml_debugger.evaluator.analysis.codes import ErrorCode, register
from ml_debugger.tasks import _object_rules as rules
from ml_debugger.tasks.detection2d.categories import barely_found
from ml_debugger.tasks.detection2d.config import DetectionConfig

TASK = "detection2d"


class DetectionCode(ErrorCode):
    """A detection code: classes affected are the units' ``object_class``."""

    task = TASK

    def affected_classes(self, table: pd.DataFrame, mask: np.ndarray, config: DetectionConfig) -> list[int]:
        values, counts = np.unique(table["object_class"].to_numpy(dtype=np.int64)[mask], return_counts=True)
        order = np.lexsort((values, -counts))
        return [int(v) for v in values[order][: config.max_affected_classes]]


def _wrong(table: pd.DataFrame) -> np.ndarray:
    return ~table["correct"].to_numpy(dtype=bool)


@register
class ClassificationError(DetectionCode):
    id = "DET001"
    name = "classification_error"
    category = "critical_hotspot"
    description = (
        "TIDE's classification error: a detection at the right place (IoU >= iou_threshold with an "
        "object) with the wrong class; on a missed object, the detection that confused it."
    )
    recommended_action = (
        "Open the confusion heatmap (with its background row and column) at the class pairs listed; "
        "compare examples of both classes. Add training examples that separate them, check the "
        "annotation guideline for the pair, and consider merging classes the images cannot tell apart."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        return _wrong(table) & rules.error_type(table, "cls")


@register
class LocalizationError(DetectionCode):
    id = "DET002"
    name = "localization_error"
    category = "recessive_hotspot"
    description = (
        "TIDE's localisation error: the right class, but the box overlaps the object with an IoU "
        "between background_iou and iou_threshold."
    )
    recommended_action = (
        "Look at the boxes drawn on the images: truncated, occluded or elongated objects and "
        "inconsistent box conventions in the annotations are the usual causes. Check the box "
        "regression loss and anchor/stride settings for these sizes and aspect ratios, and review "
        "the annotation guideline on where boxes end."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        return _wrong(table) & rules.error_type(table, "loc")


@register
class BothError(DetectionCode):
    id = "DET003"
    name = "classification_and_localization_error"
    category = "recessive_hotspot"
    description = "TIDE's 'both' error: a false positive with the wrong class and a poor box (IoU in [background_iou, iou_threshold) with an object of another class)."
    recommended_action = (
        "These detections fire on parts or neighbours of other objects: inspect them per class, "
        "add hard negatives of those contexts, and check that the classes involved are annotated "
        "consistently."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        return _wrong(table) & rules.error_type(table, "both")


@register
class DuplicateDetection(DetectionCode):
    id = "DET004"
    name = "duplicate_detection"
    category = "recessive_hotspot"
    description = (
        "TIDE's duplicate: a second detection of an object that a higher-scoring detection already "
        "found (same class, IoU >= iou_threshold)."
    )
    recommended_action = (
        "Tune non-maximum suppression: lower its IoU threshold (or use class-aware / soft NMS), and "
        "check that the model's max-detections and NMS settings at validation match deployment."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        return _wrong(table) & rules.error_type(table, "dupe")


@register
class BackgroundError(DetectionCode):
    id = "DET005"
    name = "background_error"
    category = "recessive_hotspot"
    description = "TIDE's background error: a detection overlapping no object by more than background_iou."
    recommended_action = (
        "Review the highest-scoring ones first: some are objects the annotators missed (see "
        "DET010). For the rest, add hard negative images of those backgrounds, and raise the score "
        "threshold for the classes that fire most."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        return _wrong(table) & rules.error_type(table, "bkg")


@register
class MissedObject(DetectionCode):
    id = "DET006"
    name = "missed_object"
    category = "recessive_hotspot"
    description = "TIDE's missed object: no detection of any class overlaps the object enough to recover it."
    recommended_action = (
        "Look for what the missed objects share (size, occlusion, lighting, class) with the size x "
        "error-type heatmap and the hotspot clusters; add such examples, and check the input "
        "resolution and anchor sizes against their sizes."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        return _wrong(table) & rules.error_type(table, "miss")


@register
class SmallObjectMiss(DetectionCode):
    id = "DET007"
    name = "small_object_miss"
    category = "recessive_hotspot"
    description = "A missed object (any reason) smaller than small_area pixels^2 (COCO's small)."
    recommended_action = (
        "Raise the input resolution or use tiling, add a higher-resolution feature level (e.g. P2) "
        "or smaller anchors, and oversample images with small objects; check that downscaling in "
        "preprocessing does not erase them."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        small = table["area"].to_numpy(dtype=np.float64) < config.small_area
        return _wrong(table) & rules.is_object(table) & small


@register
class CrowdedSceneMiss(DetectionCode):
    id = "DET008"
    name = "crowded_scene_miss"
    category = "recessive_hotspot"
    description = "A missed object that overlaps another object of its image with an IoU of at least crowded_iou."
    recommended_action = (
        "Overlapping objects are suppressed by NMS or merged: raise the NMS IoU threshold for "
        "these classes, try soft-NMS or a set-prediction (DETR-style) head, and add crowded scenes "
        "to training."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        crowded = table["crowding"].to_numpy(dtype=np.float64, na_value=np.nan) >= config.crowded_iou
        return _wrong(table) & rules.is_object(table) & crowded


@register
class LowScoreTruePositive(DetectionCode):
    id = "DET009"
    name = "low_score_true_positive"
    category = "recessive_hotspot"
    description = (
        "The object was found at the right place with the right class, but by a detection scoring "
        "below the operating score: lost to the score threshold."
    )
    recommended_action = (
        "The model knows these objects but is unsure: check calibration per class, consider "
        "per-class score thresholds, and add examples like them to raise their scores."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        return _wrong(table) & rules.error_type(table, "low_score")


@register
class SuspectedMissingAnnotation(DetectionCode):
    id = "DET010"
    name = "suspected_missing_annotation"
    category = "aleatoric_hotspot"
    description = (
        "A confident (score >= confident_threshold) background false positive, far from every "
        "annotated object, made again in at least min_recurrence evaluated epochs: probably an "
        "object the annotators missed."
    )
    recommended_action = (
        "Review these images with the box drawn and add the missing annotations; in a validation "
        "split they depress mAP unfairly, in a training split they teach the model to ignore such objects."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        return rules.suspected_missing_annotation(table, config)


@register
class SuspectedWrongLabel(DetectionCode):
    id = "DET011"
    name = "suspected_wrong_label"
    category = "aleatoric_hotspot"
    description = (
        "An object confidently detected as another class at the right place, in at least "
        "min_recurrence evaluated epochs: its annotated class is probably wrong."
    )
    recommended_action = (
        "Re-check the class of these objects with the annotation guideline; correct the label "
        "(the prediction is the candidate), and look for a class pair that annotators confuse."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        return rules.suspected_wrong_label(table, config)


@register
class ConfidentFalsePositive(DetectionCode):
    id = "DET012"
    name = "confident_false_positive"
    category = "critical_hotspot"
    description = "A false positive scoring at least confident_threshold: no score threshold removes it."
    recommended_action = (
        "Review these first, highest score first: if they are real objects, annotate them (DET010); "
        "if not, add them as hard negatives and check what they share (texture, context, a class "
        "look-alike)."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        return _wrong(table) & ~rules.is_object(table) & rules.confident(table, config)


@register
class ErrorClusterMember(DetectionCode):
    id = "DET013"
    name = "error_cluster_member"
    category = "hotspot"
    description = (
        "The unit lies in a hotspot cluster (a dense cluster of errors in the object feature space) "
        "or among neighbours that are mostly errors: a systematic weakness. Correct units here are fragile."
    )
    recommended_action = (
        "Open its cluster (hotspot_cluster, get_hotspots) and look at the representative images to "
        "name what they share; collect or augment data for that slice and track its recall on its own."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        return shared.near_error_cluster(table, config)


@register
class UnstableAcrossEpochs(DetectionCode):
    id = "DET014"
    name = "unstable_across_epochs"
    category = "operational_coverage"
    description = (
        "Over the traced epochs the object was found and lost at least unstable_min_flips times, "
        "or lost after being found at least unstable_min_forgetting times."
    )
    recommended_action = (
        "Check these objects for ambiguous or inconsistent boxes first; late forgetting points to a "
        "learning rate that is too high or too few such examples: decay the learning rate, "
        "re-weight them, and choose the checkpoint with them in view."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        return rules.is_object(table) & rules.unstable(table, config)


@register
class BarelyFound(DetectionCode):
    id = "DET015"
    name = "barely_found"
    category = "operational_coverage"
    description = (
        "Found, but by a detection whose score is in the lowest score_margin share of the range "
        "from the operating score to 1, or overlapping the object with an IoU below fragile_iou: "
        "the next miss."
    )
    recommended_action = (
        "Treat these as the next errors: add examples like them, check box quality for the loose "
        "ones, and watch them when changing the score threshold."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        return barely_found(table, config)


@register
class OutOfCoverage(DetectionCode):
    id = "DET016"
    name = "out_of_coverage"
    category = "recessive_hotspot"
    description = (
        "The unit's feature vector is farther from its nearest reference (training) units than "
        "coverage_percentile_max percent of the reference units are from theirs: an object unlike "
        "those the model was trained on."
    )
    recommended_action = (
        "Check for a new domain, sensor, viewpoint or object appearance; collect or synthesise "
        "training images with such objects, or detect such inputs at inference and route them to review."
    )

    def find(self, table: pd.DataFrame, config: DetectionConfig) -> np.ndarray:
        return shared.out_of_coverage(table, config)
