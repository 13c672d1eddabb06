"""The settings every detection task's object analysis shares (each task's config adds its own)."""

from __future__ import annotations

from dataclasses import dataclass

from ml_debugger.evaluator.analysis.config import Settings, check_ranges
from ml_debugger.exceptions import ConfigurationError


@dataclass(frozen=True)
class ObjectSettings(Settings):
    """Settings of the object units, categories, neighbour signals and hotspots.

    Units and categories:
        confident_threshold: a false positive (or a confusing detection) scoring at least this is
            confident: a silent failure (0.8).
        score_margin: a found object whose detection's score lies in the lowest this share of
            the range from the operating score to 1 is fragile (0.2).
        min_recurrence: a suspected missing annotation or wrong label must recur in at least
            this many evaluated epochs (2).
        unstable_min_flips, unstable_min_forgetting: an object found and lost that many times
            over the traced epochs is unstable (2, 1).

    Feature-space signals and hotspots, as for classification (see the README): reference_dataset,
    k_neighbors, n_components, n_folds, random_state, coverage_percentile_max,
    cluster_error_rate, min_cluster_size, min_cluster_fraction, min_cluster_lift,
    max_cluster_share, max_cluster_points, n_representatives, max_affected_classes.
    """

    confident_threshold: float = 0.8
    score_margin: float = 0.2
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
    "confident_threshold": (0.0, 1.0, True),
    "score_margin": (0.0, 1.0, False),
    "coverage_percentile_max": (0.0, 100.0, False),
    "cluster_error_rate": (0.0, 1.0, True),
    "min_cluster_fraction": (0.0, 1.0, False),
    "min_cluster_lift": (1.0, None, False),
    "max_cluster_share": (0.0, 1.0, True),
}
