"""Every setting of the 2-D detection analysis, with its documented default."""

from __future__ import annotations

from dataclasses import dataclass

from ml_debugger.evaluator.analysis.config import Settings, check_ranges
from ml_debugger.exceptions import ConfigurationError


@dataclass(frozen=True)
class DetectionConfig(Settings):
    """Settings of the detection analysis; every field has a default and is validated.

    Matching and the operating point:
        iou_threshold: IoU at which a detection finds an object (0.5, TIDE's foreground IoU and
            COCO's AP50).
        background_iou: below this IoU with every object a false positive is a background
            error (0.1, TIDE's).
        operating_score: the score at or above which a detection counts as made; ``None``
            (default) picks, per dataset and epoch, the score that maximises F1 at
            ``iou_threshold`` (0.5 when no detection is right).

    Units and categories (a unit is a ground-truth object or a false positive at the operating
    score):
        confident_threshold: a false positive (or a confusing detection) scoring at least this is
            confident: a silent failure (0.8).
        score_margin: a found object whose detection's score lies in the lowest this share of
            the range from the operating score to 1 is fragile (0.2).
        fragile_iou: a found object whose detection overlaps it with an IoU below this is
            loosely localised, hence fragile (0.65).
        crowded_iou: an object overlapping another object of its image with at least this IoU
            is in a crowd (0.3).
        small_area: objects with a smaller area (pixels^2) are small, COCO's 32^2 (1024).
        min_recurrence: a suspected missing annotation or wrong label must recur in at least
            this many evaluated epochs (2).
        unstable_min_flips, unstable_min_forgetting: an object found and lost that many times
            over the traced epochs is unstable (2, 1).

    Feature-space signals and hotspots (as for classification; see the README):
        reference_dataset, k_neighbors, n_components, n_folds, random_state,
        coverage_percentile_max, cluster_error_rate, min_cluster_size, min_cluster_fraction,
        min_cluster_lift, max_cluster_share, max_cluster_points, n_representatives,
        max_affected_classes.
    """

    iou_threshold: float = 0.5
    background_iou: float = 0.1
    operating_score: float | None = None
    confident_threshold: float = 0.8
    score_margin: float = 0.2
    fragile_iou: float = 0.65
    crowded_iou: float = 0.3
    small_area: float = 1024.0
    min_recurrence: int = 2
    unstable_min_flips: int = 2
    unstable_min_forgetting: int = 1
    reference_dataset: str = "train"
    k_neighbors: int = 10
    n_components: int = 64
    n_folds: int = 5
    random_state: int = 0
    coverage_percentile_max: float = 95.0
    cluster_error_rate: float = 0.5
    min_cluster_size: int = 10
    min_cluster_fraction: float = 0.01
    min_cluster_lift: float = 1.5
    max_cluster_share: float = 0.25
    max_cluster_points: int = 10000
    n_representatives: int = 5
    max_affected_classes: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.reference_dataset, str) or not self.reference_dataset:
            raise ConfigurationError(f"reference_dataset must be a non-empty string; got {self.reference_dataset!r}")
        check_ranges(self, _INT_RANGES, _FLOAT_RANGES)
        if self.operating_score is not None:
            check_ranges(self, {}, {"operating_score": (0.0, None, False)})
        if self.background_iou >= self.iou_threshold:
            raise ConfigurationError(
                f"background_iou ({self.background_iou}) must be below iou_threshold ({self.iou_threshold})"
            )


_INT_RANGES: dict[str, tuple[int, int | None]] = {
    "min_recurrence": (1, None),
    "unstable_min_flips": (1, None),
    "unstable_min_forgetting": (1, None),
    "k_neighbors": (1, None),
    "n_components": (1, None),
    "n_folds": (2, None),
    "random_state": (0, 2**32 - 1),
    "min_cluster_size": (2, None),
    "max_cluster_points": (2, None),
    "n_representatives": (1, None),
    "max_affected_classes": (1, None),
}

_FLOAT_RANGES: dict[str, tuple[float, float | None, bool]] = {
    "iou_threshold": (0.0, 1.0, True),
    "background_iou": (0.0, 1.0, False),
    "confident_threshold": (0.0, 1.0, True),
    "score_margin": (0.0, 1.0, False),
    "fragile_iou": (0.0, 1.0, False),
    "crowded_iou": (0.0, 1.0, True),
    "small_area": (0.0, None, False),
    "coverage_percentile_max": (0.0, 100.0, False),
    "cluster_error_rate": (0.0, 1.0, True),
    "min_cluster_fraction": (0.0, 1.0, False),
    "min_cluster_lift": (1.0, None, False),
    "max_cluster_share": (0.0, 1.0, True),
}
