"""The classification error codes (``CLS001`` ... ``CLS010``).

Each rule reads the per-unit table (samples, signals, ``hotspot_cluster``) and reuses the rules of
`ml_debugger.evaluator.analysis.categories`, so the codes of a unit explain its category.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_debugger.evaluator.analysis import categories as rules
from ml_debugger.evaluator.analysis.codes._base import ErrorCode, register
from ml_debugger.evaluator.analysis.config import AnalysisConfig
from ml_debugger.evaluator.analysis.duplicates import leaked_mask


@register
class ConfidentMisclassification(ErrorCode):
    id = "CLS001"
    name = "confident_misclassification"
    category = "critical_hotspot"
    description = (
        "Misclassified with a confidence (top-1 probability) at or above confident_threshold: "
        "a silent failure that no confidence threshold will catch."
    )
    recommended_action = (
        "Review these inputs first, most confident first. If their labels are right, find what "
        "they share (a sub-population, background, acquisition condition or preprocessing step) "
        "that the training data lacks and add or augment such examples; calibrate the model "
        "(e.g. temperature scaling on a held-out split) before using its confidence to reject "
        "inputs or raise alerts."
    )

    def find(self, table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
        return rules.wrong(table) & rules.confident(table, config)


@register
class BoundaryConfusion(ErrorCode):
    id = "CLS002"
    name = "boundary_confusion"
    category = "recessive_hotspot"
    description = (
        "Misclassified with a margin below low_margin while the true label is the runner-up "
        "class: the model hesitates between this pair of classes. Affected classes are the "
        "members of the most frequent label/prediction pairs."
    )
    recommended_action = (
        "Open the confusion heatmap at the listed class pair and compare examples of both "
        "classes with the annotation guideline that separates them. Add hard examples near the "
        "boundary (or a targeted augmentation); if the input does not show the difference, "
        "merge the classes or use a hierarchical label."
    )

    def find(self, table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
        # With the label as runner-up, margin = confidence - gold_proba.
        runner_up = np.isclose(
            table["confidence"].to_numpy(dtype=np.float64) - table["gold_proba"].to_numpy(dtype=np.float64),
            table["margin"].to_numpy(dtype=np.float64),
        )
        return rules.wrong(table) & rules.low_margin(table, config) & runner_up

    def affected_classes(
        self, table: pd.DataFrame, mask: np.ndarray, config: AnalysisConfig
    ) -> list[int]:
        pairs = table.loc[mask, ["label", "prediction"]].value_counts(sort=False).reset_index()
        pairs = pairs.sort_values(["count", "label", "prediction"], ascending=[False, True, True])
        classes = pd.unique(pairs[["label", "prediction"]].to_numpy().ravel())
        return [int(c) for c in classes[: config.max_affected_classes]]


@register
class OutOfCoverage(ErrorCode):
    id = "CLS003"
    name = "out_of_coverage"
    category = "recessive_hotspot"
    description = (
        "The input is farther from its nearest reference (training) samples than "
        "coverage_percentile_max percent of the reference samples are from theirs: it lies "
        "outside the training distribution."
    )
    recommended_action = (
        "Check for distribution shift: a new source, sensor or domain, or preprocessing that "
        "differs between splits. Collect or synthesise training data for this region, or detect "
        "such inputs at inference (out-of-distribution detection) and route them to a fallback "
        "or to human review."
    )

    def find(self, table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
        return rules.out_of_coverage(table, config)


@register
class SuspectedLabelError(ErrorCode):
    id = "CLS004"
    name = "suspected_label_error"
    category = "aleatoric_hotspot"
    description = (
        "Confident learning (per-class thresholds) flags the given label, fewer than "
        "label_error_max_agreement of its nearest neighbours in feature space (same dataset "
        "and epoch) share it, and the model has learned the region (reference_margin at least "
        "label_error_min_reference_margin): the label is probably wrong; suggested_label holds "
        "the likely one."
    )
    recommended_action = (
        "Re-annotate these inputs, lowest label_quality first, with suggested_label as the "
        "candidate. Fix or drop them in the training split; in an evaluation split correct the "
        "ground truth before trusting its metrics. Many of them in one class pair point to an "
        "unclear annotation guideline for that pair."
    )

    def find(self, table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
        return rules.suspected_label_error(table, config)


@register
class AmbiguousInput(ErrorCode):
    id = "CLS005"
    name = "ambiguous_input"
    category = "recessive_hotspot"
    description = (
        "Its nearest neighbours in feature space (same dataset and epoch) disagree on the label "
        "(fewer than ambiguous_max_agreement share it) and the prediction is uncertain (entropy "
        "of at least ambiguous_entropy nats): the input alone may not determine its class, or "
        "the model has not learned to separate it. Alone it does not blame the data."
    )
    recommended_action = (
        "Look at a few of these inputs next to their neighbours. If a person cannot decide "
        "either, sharpen the class definitions, allow an 'uncertain' label or several labels, "
        "or leave them out of the accuracy target; if a person can, the model lacks information "
        "it needs (resolution, context, another modality)."
    )

    def find(self, table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
        return rules.ambiguous(table, config)


@register
class UnstableAcrossEpochs(ErrorCode):
    id = "CLS006"
    name = "unstable_across_epochs"
    category = "operational_coverage"
    description = (
        "Over the traced epochs the prediction's correctness flipped at least "
        "unstable_min_flips times, or the input was forgotten (correct, then wrong) at least "
        "unstable_min_forgetting times. Needs two or more traced epochs."
    )
    recommended_action = (
        "Check these inputs for noisy labels or a rare sub-population first. Forgetting late in "
        "training points to a learning rate that is too high or too little data in this "
        "region: decay the learning rate, add or re-weight similar samples, and pick the "
        "checkpoint with these samples in view (compare epochs in the epoch x category heatmap)."
    )

    def find(self, table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
        return rules.unstable(table, config)


@register
class ErrorClusterMember(ErrorCode):
    id = "CLS007"
    name = "error_cluster_member"
    category = "hotspot"
    description = (
        "The input lies in a hotspot cluster (a dense cluster of errors in feature space) or in "
        "a dense error neighbourhood: at least max(cluster_error_rate, min_cluster_lift x the "
        "split's base error rate) of its nearest neighbours (same dataset and epoch) are "
        "misclassified: a systematic weakness of the model. Correct units here are fragile."
    )
    recommended_action = (
        "Open its cluster (hotspot_cluster, get_hotspots) and inspect the representative "
        "inputs to name what they share. Collect or augment training data for that slice, "
        "track the slice's accuracy as a metric of its own, consider up-weighting it, and "
        "re-evaluate to see the cluster shrink."
    )

    def find(self, table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
        return rules.near_error_cluster(table, config)


@register
class UnderconfidentCorrect(ErrorCode):
    id = "CLS008"
    name = "underconfident_correct"
    category = "operational_coverage"
    description = (
        "Correctly classified with a margin below low_margin: a small change to the input or to "
        "the model could flip it."
    )
    recommended_action = (
        "Treat these as the next errors: add training examples like them (hard-example "
        "mining), test them under the perturbations expected in production, and check in the "
        "class x error code heatmap whether they concentrate in a few classes."
    )

    def find(self, table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
        return ~rules.wrong(table) & rules.low_margin(table, config)


@register
class DuplicateAcrossSplits(ErrorCode):
    id = "CLS009"
    name = "duplicate_across_splits"
    category = "stable_coverage"
    description = (
        "The same input (same input_hash) is traced in more than one dataset, e.g. in train and "
        "val: split leakage, which inflates the evaluation split's metrics."
    )
    recommended_action = (
        "Deduplicate by input_hash: drop the duplicates from the evaluation split (or from "
        "training) and re-evaluate; split by source or group rather than by row so that it does "
        "not recur."
    )

    def find(self, table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
        return leaked_mask(table)


@register
class ConflictingLabels(ErrorCode):
    id = "CLS010"
    name = "conflicting_labels"
    category = "aleatoric_hotspot"
    description = (
        "The same input (same input_hash) is traced with different labels, in one dataset or "
        "across datasets: at least one of the labels is wrong."
    )
    recommended_action = (
        "Adjudicate the conflicting labels (second annotator or the guideline), keep one label "
        "per input and deduplicate; check the annotation pipeline for merge errors and the "
        "guideline for the classes involved."
    )

    def find(self, table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
        return rules.conflicting_labels(table)
