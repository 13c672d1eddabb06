"""Every setting of the 3-D detection analysis, with its documented default."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ml_debugger.evaluator.analysis.config import check_ranges
from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks._object_config import ObjectSettings


@dataclass(frozen=True)
class Detection3DConfig(ObjectSettings):
    """Settings of the 3-D detection analysis: the shared object settings (``ObjectSettings``)
    and these; every field has a default and is validated.

    Matching and the operating point (the nuScenes devkit's rules; see the README):
        match_distance: centre distance (m) under which a detection finds an object of its class
            (2.0, the devkit's threshold for the TP errors).
        near_distance: an unmatched detection of the right class closer than this (m) to an object
            is a localisation error, not a background one (4.0, the devkit's loosest threshold).
        operating_score: the score from which detections count; ``None`` picks, per dataset and
            epoch, the score that maximises F1 at ``match_distance`` (0.5 if nothing is right).
        range_limit: evaluate classes without a nuScenes class range only within this distance
            (m) of the ego origin; ``None``: no limit (the nuScenes classes keep theirs).

    Units:
        far_range: a missed object at least this far (m) from the ego origin is a far-range miss (40.0).
        sparse_points: a missed object with fewer LiDAR points than this is a sparse-points miss (5).
        translation_error_max: a found object whose detection is at least this far (m) from it
            is found with a translation error (0.5).
        scale_error_max: ... whose 1 - IoU of the aligned boxes is at least this, with a scale error (0.3).
        orientation_error_max: ... whose heading differs by at least this (radians), with an
            orientation error (pi / 4); from ``flipped_heading`` (3 pi / 4) on, a flipped heading.
        velocity_error_max: ... whose velocity differs by at least this (m/s), with a velocity error (1.0).
    """

    match_distance: float = 2.0
    near_distance: float = 4.0
    operating_score: float | None = None
    range_limit: float | None = None
    far_range: float = 40.0
    sparse_points: int = 5
    translation_error_max: float = 0.5
    scale_error_max: float = 0.3
    orientation_error_max: float = math.pi / 4
    flipped_heading: float = 3 * math.pi / 4
    velocity_error_max: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self, {"sparse_points": (0, None)}, {
            "match_distance": (0.0, None, True),
            "near_distance": (0.0, None, True),
            "far_range": (0.0, None, True),
            "translation_error_max": (0.0, None, True),
            "scale_error_max": (0.0, 1.0, True),
            "orientation_error_max": (0.0, math.pi, True),
            "flipped_heading": (0.0, math.pi, True),
            "velocity_error_max": (0.0, None, True),
        })
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
