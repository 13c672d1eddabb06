"""Forward-hook capture of a classifier's logits and features while a framework runs the model.

Framework callbacks do not call the model: the framework's own loop does. ``ForwardCapture``
watches those calls through hooks that live only between ``attach()`` and ``detach()``.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.training._torch import (
    _first_tensor,
    extract_logits,
    pool_features,
    to_numpy,
)

logger = logging.getLogger(__name__)

Handle = torch.utils.hooks.RemovableHandle


def _logits_or_none(output: Any) -> torch.Tensor | None:
    try:
        return extract_logits(output)
    except TraceValidationError:
        return None


def _module(model: nn.Module, name: str, field: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        raise ConfigurationError(
            f"{field} {name!r} is not a module of {type(model).__name__}; some of its modules: "
            f"{[n for n in modules if n][:20]} ('' is the model itself)"
        )
    return modules[name]


class ForwardCapture:
    """Keeps the logits and features of the forward passes a framework runs, one batch at a time.

    Logits are the output of ``logits_module`` (``""`` is the model itself). When it is ``None``,
    the first batch finds it: the outermost module whose output is a ``(batch, n_classes)`` tensor
    (the last such call when several are equally outer). Features are the output of
    ``feature_layer``, or by default the input of the ``nn.Linear`` that produced the logits (the
    penultimate layer). ``take(batch_size)`` returns what was computed since the previous take;
    the last call of a module in a batch wins. While ``enabled`` is False the hooks do nothing.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        logits_module: str | None = None,
        feature_layer: str | None = None,
        record_features: bool = True,
    ) -> None:
        self.model = model
        self.enabled = True
        self._logits_name = logits_module
        self._feature_layer = feature_layer if record_features else None
        self._feature_linear: str | None = None
        self._find_linear = record_features and feature_layer is None
        for name, field in ((logits_module, "logits_module"), (self._feature_layer, "feature_layer")):
            if name is not None:
                _module(model, name, field)
        self._handles: list[Handle] = []
        self._probes: list[Handle] = []
        self._candidates: list[tuple[int, str, torch.Tensor]] = []
        self._linears: list[tuple[str, torch.Tensor, torch.Tensor]] = []
        self._logits: torch.Tensor | None = None
        self._features: torch.Tensor | None = None

    @property
    def logits_module(self) -> str | None:
        """The name of the module whose output is recorded as logits, once known."""
        return self._logits_name

    @property
    def attached(self) -> bool:
        return bool(self._handles or self._probes)

    def attach(self) -> None:
        """Register the hooks (idempotent)."""
        if self.attached:
            return
        self._register_resolved()
        if self._logits_name is None:
            self._probes = [
                module.register_forward_hook(self._probe_hook(name, module))
                for name, module in self.model.named_modules()
            ]
        elif self._find_linear:
            self._probes = [
                module.register_forward_hook(self._probe_hook(name, module))
                for name, module in self.model.named_modules() if isinstance(module, nn.Linear)
            ]

    def detach(self) -> None:
        """Remove every hook and forget what was captured but not taken."""
        for handle in self._handles + self._probes:
            handle.remove()
        self._handles, self._probes = [], []
        self.clear()

    def take(self, batch_size: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(logits, features)`` of the batch run since the last take, as numpy (``None`` if absent)."""
        if self._probes:
            self._resolve(batch_size)
        logits, features = self._logits, self._features
        self.clear()
        return (
            None if logits is None else to_numpy(logits),
            None if features is None else to_numpy(pool_features(features)),
        )

    def clear(self) -> None:
        """Forget what was captured but not taken (call before a batch)."""
        self._logits = self._features = None
        self._candidates, self._linears = [], []

    def _register_resolved(self) -> None:
        if self._logits_name is not None:
            module = _module(self.model, self._logits_name, "logits_module")
            self._handles.append(module.register_forward_hook(self._on_logits))
        if self._feature_layer is not None:
            module = _module(self.model, self._feature_layer, "feature_layer")
            self._handles.append(module.register_forward_hook(self._on_feature_output))
        elif self._feature_linear is not None:
            module = _module(self.model, self._feature_linear, "feature linear")
            self._handles.append(module.register_forward_pre_hook(self._on_feature_input))

    def _on_logits(self, module: nn.Module, args: tuple, output: Any) -> None:
        logits = _logits_or_none(output) if self.enabled else None
        if logits is not None:  # a wrapper's call of the module may return no logits (Lightning's DDP redirection)
            self._logits = logits.detach()

    def _on_feature_output(self, module: nn.Module, args: tuple, output: Any) -> None:
        tensor = _first_tensor(output) if self.enabled else None
        if tensor is not None:
            self._features = tensor.detach()

    def _on_feature_input(self, module: nn.Module, args: tuple) -> None:
        if self.enabled and args and isinstance(args[0], torch.Tensor):
            self._features = args[0].detach()

    def _probe_hook(self, name: str, module: nn.Module):
        depth = 0 if name == "" else name.count(".") + 1
        is_linear = isinstance(module, nn.Linear)
        find_logits = self._logits_name is None

        def probe(mod: nn.Module, args: tuple, output: Any) -> None:
            if not self.enabled:
                return
            if find_logits:
                logits = _logits_or_none(output)
                if logits is not None and logits.ndim == 2:
                    self._candidates.append((depth, name, logits.detach()))
            if is_linear and args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
                self._linears.append((name, args[0].detach(), output.detach()))

        return probe

    def _resolve(self, batch_size: int) -> None:
        if self._logits_name is None:
            matches = [c for c in self._candidates if c[2].shape[0] == batch_size]
            if not matches:
                return  # nothing to go on in this batch; keep probing
            outermost = min(depth for depth, _, _ in matches)
            _, self._logits_name, self._logits = [c for c in matches if c[0] == outermost][-1]
            logger.info("ml-debugger: recording the output of %r as logits", self._logits_name or "<model>")
        if self._logits is None:
            return  # the logits module did not run in this batch; keep probing
        if self._find_linear:
            self._features = self._resolve_linear(self._logits)
        for handle in self._probes:
            handle.remove()
        self._probes = []
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._register_resolved()

    def _resolve_linear(self, logits: torch.Tensor) -> torch.Tensor | None:
        self._find_linear = False
        same = [(n, i) for n, i, o in self._linears if o.shape == logits.shape and o.data_ptr() == logits.data_ptr()]
        shaped = [(n, i) for n, i, o in self._linears if o.shape == logits.shape]
        matches = same or shaped
        if not matches:
            warnings.warn(
                f"ml-debugger: no nn.Linear producing the logits was found in {type(self.model).__name__}; "
                "features are not recorded (pass feature_layer='<module name>' to choose a layer)",
                stacklevel=2,
            )
            return None
        self._feature_linear, features = matches[-1]
        logger.info("ml-debugger: recording the input of %r as features", self._feature_linear)
        return features
