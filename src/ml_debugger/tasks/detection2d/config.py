"""Every setting of the 2-D detection analysis, with its documented default."""

from __future__ import annotations

from dataclasses import dataclass

from ml_debugger.evaluator.analysis.config import check_ranges
from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks._object_config import ObjectSettings


@dataclass(frozen=True)
class DetectionConfig(ObjectSettings):
    """Settings of the 2-D detection analysis: the shared object settings (``ObjectSettings``)
    and these; every field has a default and is validated.

    Matching and the operating point:
        iou_threshold: IoU at which a detection finds an object (0.5, TIDE's foreground IoU and
            COCO's AP50).
        background_iou: below this IoU with every object a false positive is a background
            error (0.1, TIDE's).
        operating_score: the score at or above which a detection counts as made; ``None``
            (default) picks, per dataset and epoch, the score that maximises F1 at
            ``iou_threshold`` (0.5 when no detection is right).

    Units:
        fragile_iou: a found object whose detection overlaps it with an IoU below this is
            loosely localised, hence fragile (0.65).
        crowded_iou: an object overlapping another object of its image with at least this IoU
            is in a crowd (0.3).
        small_area: objects with a smaller area (pixels^2) are small, COCO's 32^2 (1024).
    """

    iou_threshold: float = 0.5
    background_iou: float = 0.1
    operating_score: float | None = None
    fragile_iou: float = 0.65
    crowded_iou: float = 0.3
    small_area: float = 1024.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self, {}, {
            "iou_threshold": (0.0, 1.0, True),
            "background_iou": (0.0, 1.0, False),
            "fragile_iou": (0.0, 1.0, False),
            "crowded_iou": (0.0, 1.0, True),
            "small_area": (0.0, None, False),
        })
        if self.operating_score is not None:
            check_ranges(self, {}, {"operating_score": (0.0, None, False)})
        if self.background_iou >= self.iou_threshold:
            raise ConfigurationError(
                f"background_iou ({self.background_iou}) must be below iou_threshold ({self.iou_threshold})"
            )
