"""Every threshold of the classification analysis, with its documented default."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

from ml_debugger.exceptions import ConfigurationError


class Settings:
    """What every task's analysis settings offer: building from keyword arguments, and a dict."""

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Any:
        """Build the settings from keyword arguments, rejecting unknown keys and bad values."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise ConfigurationError(
                f"unknown analysis option {unknown[0]!r}; expected one of: {', '.join(valid)}"
            )
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (JSON-serialisable)."""
        return asdict(self)


@dataclass(frozen=True)
class AnalysisConfig(Settings):
    """Thresholds and parameters of `analyze`; every field has a default and is validated.

    Signals (passed on to ``compute_signals``):
        reference_dataset: the split that defines training coverage ("train").
        k_neighbors: neighbours used by the kNN signals (10).
        n_components: PCA components the features are reduced to before kNN (64).
        n_folds: cross-fitting folds of ``error_proba`` (5).
        random_state: seed of every random step (0).

    Categories and codes:
        confident_threshold: an error whose confidence is at or above this is a confident
            misclassification, category critical_hotspot (0.8).
        low_margin: a unit whose top-1 minus top-2 probability is below this is low-margin: a
            correct one is fragile (operational_coverage), a wrong one is a boundary confusion (0.2).
        coverage_percentile_max: a unit whose ``coverage_percentile`` is above this is out of
            the reference split's coverage (95.0: farther from the training data than 95% of the
            training samples are from theirs).
        cluster_error_rate: a unit whose nearest units of its own dataset and epoch are
            misclassified at or above this rate (``knn_error_rate``) is in a dense error
            neighbourhood; such errors are the cores of the hotspot clusters (0.5).
        label_error_max_agreement: a confident-learning label issue is kept as a suspected label
            error only when fewer than this share of its nearest neighbours carry its label
            (0.6: a majority backs it); without features every label issue is kept.
        label_error_min_reference_margin: ... and only where the model has learned the region:
            the mean margin of its nearest reference (training) units (``reference_margin``) is
            at least this (0.2); without features this condition is off.
        ambiguous_max_agreement: a unit is ambiguous when fewer than this share of its nearest
            neighbours carry its label (0.5) ...
        ambiguous_entropy: ... and its predictive entropy is at least this many nats (0.5, about
            an 80/20 split between two classes).
        unstable_min_flips: a unit whose correctness changed at least this many times between
            consecutive traced epochs is unstable (2) ...
        unstable_min_forgetting: ... as is one forgotten (correct, then wrong) at least this
            many times (1).

    Hotspot clusters:
        min_cluster_size: smallest number of errors that can form a cluster (10).
        min_cluster_fraction: a cluster also needs at least this share of the errors of its
            dataset and epoch (0.01).
        min_cluster_lift: a cluster's error rate must be at least this multiple of its dataset
            and epoch's base error rate (1.5); a neighbourhood is a dense error region only when
            its error rate reaches this multiple too.
        max_cluster_share: a cluster's region may hold at most this share of the units of its
            dataset and epoch (0.25): a broader region is not specific.
        max_cluster_points: at most this many core errors per dataset and epoch (a random
            sample) are linked into clusters (10000).

    Reporting:
        n_representatives: input_ids listed per hotspot cluster (5).
        max_affected_classes: classes listed per issue (5).
    """

    reference_dataset: str = "train"
    k_neighbors: int = 10
    n_components: int = 64
    n_folds: int = 5
    random_state: int = 0
    confident_threshold: float = 0.8
    low_margin: float = 0.2
    coverage_percentile_max: float = 95.0
    cluster_error_rate: float = 0.5
    label_error_max_agreement: float = 0.6
    label_error_min_reference_margin: float = 0.2
    ambiguous_max_agreement: float = 0.5
    ambiguous_entropy: float = 0.5
    unstable_min_flips: int = 2
    unstable_min_forgetting: int = 1
    min_cluster_size: int = 10
    min_cluster_fraction: float = 0.01
    min_cluster_lift: float = 1.5
    max_cluster_share: float = 0.25
    max_cluster_points: int = 10000
    n_representatives: int = 5
    max_affected_classes: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.reference_dataset, str) or not self.reference_dataset:
            raise ConfigurationError(
                f"reference_dataset must be a non-empty string; got {self.reference_dataset!r}"
            )
        check_ranges(self, _INT_RANGES, _FLOAT_RANGES)
        if self.max_cluster_points < self.min_cluster_size:
            raise ConfigurationError(
                f"max_cluster_points ({self.max_cluster_points}) must be at least "
                f"min_cluster_size ({self.min_cluster_size})"
            )

# name -> (minimum, maximum) inclusive
_INT_RANGES: dict[str, tuple[int, int | None]] = {
    "k_neighbors": (1, None),
    "n_components": (1, None),
    "n_folds": (2, None),
    "random_state": (0, 2**32 - 1),
    "unstable_min_flips": (1, None),
    "unstable_min_forgetting": (1, None),
    "min_cluster_size": (2, None),
    "max_cluster_points": (2, None),
    "n_representatives": (1, None),
    "max_affected_classes": (1, None),
}

# name -> (minimum, maximum, minimum excluded)
_FLOAT_RANGES: dict[str, tuple[float, float | None, bool]] = {
    "confident_threshold": (0.0, 1.0, True),
    "low_margin": (0.0, 1.0, False),
    "coverage_percentile_max": (0.0, 100.0, False),
    "cluster_error_rate": (0.0, 1.0, True),
    "label_error_max_agreement": (0.0, 1.0, False),
    "label_error_min_reference_margin": (0.0, 1.0, False),
    "ambiguous_max_agreement": (0.0, 1.0, False),
    "ambiguous_entropy": (0.0, None, False),
    "min_cluster_fraction": (0.0, 1.0, False),
    "min_cluster_lift": (1.0, None, False),
    "max_cluster_share": (0.0, 1.0, True),
}


def check_ranges(
    settings: Any,
    int_ranges: dict[str, tuple[int, int | None]],
    float_ranges: dict[str, tuple[float, float | None, bool]],
) -> None:
    """Check every named field of ``settings``: ints ``(minimum, maximum)`` inclusive (None: no
    maximum), floats ``(minimum, maximum, minimum excluded)``; ConfigurationError naming the field."""
    for name, (low, high) in int_ranges.items():
        check_int(name, getattr(settings, name), low, high)
    for name, (low, high, low_open) in float_ranges.items():
        check_float(name, getattr(settings, name), low, high, low_open)


def check_int(name: str, value: Any, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigurationError(f"{name} must be an integer; got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigurationError(f"{name} must be {bound}; got {value}")


def check_float(name: str, value: Any, low: float, high: float | None, low_open: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ConfigurationError(f"{name} must be a number; got {value!r}")
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value > high):
        opening = "(" if low_open else "["
        bound = f"{opening}{low}, {high}]" if high is not None else f"{opening}{low}, inf)"
        raise ConfigurationError(f"{name} must be in {bound}; got {value}")
