"""Every setting of the 3-D detection analysis, with its documented default."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ml_debugger.evaluator.analysis.config import Settings, check_ranges
from ml_debugger.exceptions import ConfigurationError


@dataclass(frozen=True)
class Detection3DConfig(Settings):
    """Settings of the 3-D detection analysis; every field has a default and is validated.

    Matching and the operating point (the nuScenes devkit's rules; see the README):
        match_distance: centre distance (m) under which a detection finds an object of its class
            (2.0, the devkit's threshold for the TP errors).
        near_distance: an unmatched detection of the right class closer than this (m) to an object
            is a localisation error, not a background one (4.0, the devkit's loosest threshold).
        operating_score: the score from which detections count; ``None`` picks, per dataset and
            epoch, the score that maximises F1 at ``match_distance`` (0.5 if nothing is right).
        range_limit: evaluate classes without a nuScenes class range only within this distance
            (m) of the ego origin; ``None``: no limit (the nuScenes classes keep theirs).

    Units and categories:
        confident_threshold, score_margin, min_recurrence, unstable_min_flips,
        unstable_min_forgetting: as for 2-D detection (0.8, 0.2, 2, 2, 1).
        far_range: a missed object at least this far (m) from the ego origin is a far-range miss (40.0).
        sparse_points: a missed object with fewer LiDAR points than this is a sparse-points miss (5).
        translation_error_max: a found object whose detection is at least this far (m) from it
            is found with a translation error (0.5).
        scale_error_max: ... whose 1 - IoU of the aligned boxes is at least this, with a scale error (0.3).
        orientation_error_max: ... whose heading differs by at least this (radians), with an
            orientation error (pi / 4); from ``flipped_heading`` (3 pi / 4) on, a flipped heading.
        velocity_error_max: ... whose velocity differs by at least this (m/s), with a velocity error (1.0).

    Feature-space signals and hotspots, as for classification: reference_dataset, k_neighbors,
    n_components, n_folds, random_state, coverage_percentile_max, cluster_error_rate,
    min_cluster_size, min_cluster_fraction, min_cluster_lift, max_cluster_share,
    max_cluster_points, n_representatives, max_affected_classes.
    """

    match_distance: float = 2.0
    near_distance: float = 4.0
    operating_score: float | None = None
    range_limit: float | None = None
    confident_threshold: float = 0.8
    score_margin: float = 0.2
    min_recurrence: int = 2
    unstable_min_flips: int = 2
    unstable_min_forgetting: int = 1
    far_range: float = 40.0
    sparse_points: int = 5
    translation_error_max: float = 0.5
    scale_error_max: float = 0.3
    orientation_error_max: float = math.pi / 4
    flipped_heading: float = 3 * math.pi / 4
    velocity_error_max: float = 1.0
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
        for name in ("operating_score", "range_limit"):
            if getattr(self, name) is not None:
                check_ranges(self, {}, {name: (0.0, None, name == "range_limit")})
        if self.near_distance < self.match_distance:
            raise ConfigurationError(
                f"near_distance ({self.near_distance}) must be at least match_distance ({self.match_distance})"
            )
        if self.flipped_heading < self.orientation_error_max:
            raise ConfigurationError(
                f"flipped_heading ({self.flipped_heading}) must be at least orientation_error_max ({self.orientation_error_max})"
            )


_INT_RANGES: dict[str, tuple[int, int | None]] = {
    "min_recurrence": (1, None),
    "unstable_min_flips": (1, None),
    "unstable_min_forgetting": (1, None),
    "sparse_points": (0, None),
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
    "match_distance": (0.0, None, True),
    "near_distance": (0.0, None, True),
    "confident_threshold": (0.0, 1.0, True),
    "score_margin": (0.0, 1.0, False),
    "far_range": (0.0, None, True),
    "translation_error_max": (0.0, None, True),
    "scale_error_max": (0.0, 1.0, True),
    "orientation_error_max": (0.0, math.pi, True),
    "flipped_heading": (0.0, math.pi, True),
    "velocity_error_max": (0.0, None, True),
    "coverage_percentile_max": (0.0, 100.0, False),
    "cluster_error_rate": (0.0, 1.0, True),
    "min_cluster_fraction": (0.0, 1.0, False),
    "min_cluster_lift": (1.0, None, False),
    "max_cluster_share": (0.0, 1.0, True),
}
