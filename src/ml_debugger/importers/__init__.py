"""Importers: predictions made by other tools, recorded as committed epochs of a model version."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ImportSummary:
    """What an import recorded: images or frames (``inputs``), ground-truth objects, detections, epoch."""

    inputs: int
    objects: int
    detections: int
    epoch: int
