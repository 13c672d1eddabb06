"""Capture inside one Ultralytics validator: the only place that reaches past Ultralytics' callbacks.

Ultralytics' ``on_val_batch_end`` receives only the validator, while the predictions after its NMS
and the batch are locals of ``BaseValidator.__call__``; they reach ``validator.update_metrics(preds,
batch)``. ``ValidatorCapture`` therefore wraps two methods of one validator instance (never the
class, so other validators and other trainers in the process are untouched):

- ``init_metrics(model)``: the model about to run, whose detect head gets a forward pre-hook that
  keeps the neck's feature maps of the current batch;
- ``update_metrics(preds, batch)``: calls the original first (Ultralytics' metrics never depend on
  tracing), then hands ``preds``, ``batch`` and the maps to ``on_batch``.

``restore()`` removes the hook and the wrappers. Checked against Ultralytics 8.1 and newer (the
names and arguments of both methods are unchanged since 8.0); ``check_validator`` says why a
validator cannot be traced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.nn.modules import OBB, Detect

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.training.detection._ultralytics import check_version

OnBatch = Callable[[Any, Any, "list[torch.Tensor] | None"], None]
WRAPPED = ("init_metrics", "update_metrics")


def check_validator(validator: Any) -> None:
    """ConfigurationError unless ``validator`` is an axis-aligned box detection validator of a supported version."""
    check_version()
    if not isinstance(validator, DetectionValidator) or type(validator).__name__ == "OBBValidator":
        raise ConfigurationError(
            f"{type(validator).__name__} is not traced: ml-debugger traces YOLO detect, segment and pose validation "
            "(axis-aligned boxes of a DetectionValidator)"
        )
    for name in WRAPPED:
        if not callable(getattr(validator, name, None)):
            raise ConfigurationError(
                f"{type(validator).__name__} has no {name}(); this Ultralytics version is not supported"
            )


def detect_head(model: Any) -> Detect | None:
    """The last ``Detect`` head of ``model`` (a DetectionModel, its EMA, or an AutoBackend, which holds
    its PyTorch model outside its own modules), else None."""
    for candidate in (model, getattr(model, "model", None)):
        if isinstance(candidate, nn.Module):
            heads = [m for m in candidate.modules() if isinstance(m, Detect) and not isinstance(m, OBB)]
            if heads:
                return heads[-1]
    return None


class ValidatorCapture:
    """Wraps one validator's ``init_metrics`` and ``update_metrics`` until ``restore()``.

    Args:
        validator: the DetectionValidator to capture.
        on_batch: called as ``on_batch(preds, batch, neck_maps_or_None)`` after the original
            ``update_metrics``; it must not raise unless tracing is strict.
        record_features: keep the neck's feature maps (a pre-hook on the detect head).
    """

    def __init__(self, validator: Any, on_batch: OnBatch, *, record_features: bool) -> None:
        check_validator(validator)
        self.validator = validator
        self._on_batch = on_batch
        self._record_features = record_features
        self._maps: list[torch.Tensor] | None = None
        self._hook: Any = None
        self._previous = {name: validator.__dict__.get(name) for name in WRAPPED}
        self._originals = {name: getattr(validator, name) for name in WRAPPED}
        self._wrappers = {"init_metrics": self._init_metrics, "update_metrics": self._update_metrics}
        for name, wrapper in self._wrappers.items():
            setattr(validator, name, wrapper)
        self.active = True

    def _init_metrics(self, model: Any) -> Any:
        result = self._originals["init_metrics"](model)
        self._remove_hook()
        head = detect_head(model) if self._record_features else None
        if head is not None and not getattr(self.validator.args, "augment", False):  # TTA runs the head 3 times
            self._hook = head.register_forward_pre_hook(self._keep_maps)
        return result

    def _keep_maps(self, module: nn.Module, args: tuple) -> None:
        self._maps = list(args[0]) if args and isinstance(args[0], (list, tuple)) else None

    def _update_metrics(self, preds: Any, batch: Any) -> Any:
        result = self._originals["update_metrics"](preds, batch)
        if self.active:
            maps, self._maps = self._maps, None
            self._on_batch(preds, batch, maps)
        return result

    def _remove_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def restore(self) -> None:
        """Remove the hook and put back the validator's own methods (unless something wrapped them after us)."""
        self.active = False
        self._remove_hook()
        self._maps = None
        for name, wrapper in self._wrappers.items():
            if self.validator.__dict__.get(name) is not wrapper:
                continue  # wrapped again after us: leave the chain, our wrapper is inactive now
            if self._previous[name] is None:
                del self.validator.__dict__[name]
            else:
                setattr(self.validator, name, self._previous[name])
