"""Which score / IoU / max-detections thresholds a detection tracer uses, and what it must filter.

Order of precedence for each value: the tracer's argument, the model's own setting, the family's
post-processing default, the reference SDK's fallback (0.05 / 0.5 / 300).

Two kinds of families:
- the model applies its thresholds itself (torchvision, KerasCV / KerasHub, TF Object Detection
  API): the tracer never changes the model. A stricter argument is applied to the recorded copy of
  the predictions; a looser one cannot bring back what the model dropped, so it warns and keeps the
  model's value. Where the model's value cannot be read, the value used is applied to the copy.
- the tracer decodes the raw output (Ultralytics, DETR, CenterNet): the values used are applied
  while decoding.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks.detection2d import Thresholds

FALLBACK = Thresholds(score_thresh=0.05, iou_thresh=0.5, max_detections=300)

_FIELDS = (
    # (Thresholds field, tracer argument, stricter when the value is)
    ("score_thresh", "score_thresh", "higher"),
    ("iou_thresh", "iou_thresh", "lower"),
    ("max_detections", "max_detections_per_image", "lower"),
)


@dataclass(frozen=True)
class ThresholdPolicy:
    """How a family treats thresholds.

    Attributes:
        model_applies: the model's own post-processing applies them (the tracer only filters a copy).
        uses_nms: the family suppresses duplicates with an IoU threshold (DETR and CenterNet do not).
        defaults: the family's post-processing defaults (``None``: use the reference fallback).
        hint: where the user changes the model's own values, for warnings (``"model.score_thresh"``).
        given_only: use the arguments as given, None where not given (no model, nothing to infer).
    """

    model_applies: bool
    uses_nms: bool = True
    defaults: Thresholds = field(default_factory=Thresholds)
    hint: str = ""
    given_only: bool = False


def validate_requested(score_thresh: float | None, iou_thresh: float | None, max_detections: int | None) -> Thresholds:
    """The tracer's arguments, checked: thresholds in [0, 1], max detections a positive int."""
    for name, value in (("score_thresh", score_thresh), ("iou_thresh", iou_thresh)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is not None and not (number and 0 <= value <= 1):
            raise ConfigurationError(f"{name} must be a number in [0, 1] or None; got {value!r}")
    if max_detections is not None and (
        isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 1
    ):
        raise ConfigurationError(f"max_detections_per_image must be a positive int or None; got {max_detections!r}")
    return Thresholds(
        None if score_thresh is None else float(score_thresh),
        None if iou_thresh is None else float(iou_thresh),
        max_detections,
    )


def resolve(requested: Thresholds, model: Thresholds, policy: ThresholdPolicy) -> tuple[Thresholds, Thresholds]:
    """The thresholds used (recorded on every row) and the limits to apply to the model's output.

    The second value has ``None`` for every limit the predictions already satisfy.
    """
    if policy.given_only:
        return requested, Thresholds()
    used: dict[str, float | int | None] = {}
    limits: dict[str, float | int | None] = {}
    for name, argument, stricter in _FIELDS:
        asked = getattr(requested, name)
        own = getattr(model, name)
        if name == "iou_thresh" and not policy.uses_nms:
            if asked is not None:
                warnings.warn(f"ml-debugger: this family does not use NMS; iou_thresh={asked} is ignored", stacklevel=4)
            used[name] = limits[name] = None
            continue
        fallback = next(v for v in (own, getattr(policy.defaults, name), getattr(FALLBACK, name)) if v is not None)
        if asked is None:
            used[name] = fallback
            limits[name] = fallback if policy.model_applies and own is None else None
        elif policy.model_applies and own is not None and not _is_stricter(asked, own, stricter):
            if asked != own:
                warnings.warn(
                    f"ml-debugger: {argument}={asked} is looser than the model's own ({own}); predictions the model "
                    f"already dropped cannot be recovered, so {own} is used and recorded. To change it, set "
                    f"{policy.hint or 'the model setting'} before tracing.",
                    stacklevel=4,
                )
            used[name], limits[name] = own, None
        else:
            used[name] = asked
            limits[name] = asked if policy.model_applies else None
    return Thresholds(**used), Thresholds(**limits)


def _is_stricter(asked: float, own: float, stricter: str) -> bool:
    return asked > own if stricter == "higher" else asked < own
