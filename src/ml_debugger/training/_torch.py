"""Torch helpers for tracers and callbacks: tensors to numpy, model outputs, feature hooks."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from ml_debugger.exceptions import ConfigurationError, TraceValidationError

logger = logging.getLogger(__name__)


def to_numpy(value: Any) -> np.ndarray:
    """A CPU numpy array of a tensor (detached; bfloat16 widened), array or list."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if tensor.dtype in (torch.bfloat16, torch.float16):
            tensor = tensor.float()
        return tensor.cpu().numpy()
    return np.asarray(value)


def input_arrays(inputs: Any) -> list[np.ndarray]:
    """The batch-first arrays of a model input: a tensor, a mapping or a sequence of tensors."""
    if isinstance(inputs, Mapping):
        values = [inputs[k] for k in sorted(inputs)]
    elif isinstance(inputs, (list, tuple)):
        values = list(inputs)
    else:
        values = [inputs]
    arrays = [to_numpy(v) for v in values if isinstance(v, (torch.Tensor, np.ndarray))]
    if not arrays:
        raise TraceValidationError(
            f"cannot find a batch tensor in the model input of type {type(inputs).__name__}; "
            "pass a tensor, a dict of tensors or a tuple of tensors"
        )
    return arrays


def extract_logits(output: Any) -> torch.Tensor:
    """The logits tensor of a model output: a tensor, ``.logits``, ``["logits"]`` or the first item."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, Mapping):
        logits = output.get("logits")
    if logits is None and isinstance(output, (list, tuple)) and output and isinstance(output[0], torch.Tensor):
        logits = output[0]
    if not isinstance(logits, torch.Tensor):
        raise TraceValidationError(
            f"cannot find logits in a model output of type {type(output).__name__}; the model must return a "
            "tensor, an object with .logits, a dict with 'logits' or a tuple whose first item is the logits"
        )
    return logits


def pool_features(tensor: torch.Tensor) -> torch.Tensor:
    """``(batch, d)`` features: spatial maps and token sequences are average-pooled."""
    if tensor.ndim == 4:  # (B, C, H, W)
        tensor = tensor.mean(dim=(2, 3))
    elif tensor.ndim == 3:  # (B, T, D)
        tensor = tensor.mean(dim=1)
    return tensor.reshape(tensor.shape[0], -1)


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return getattr(value, "last_hidden_state", None)


class FeatureCapture:
    """Captures one feature vector per sample during a forward pass.

    With ``layer_name`` the output of that module is captured. Otherwise the input of the last
    ``nn.Linear`` that produces the logits (the penultimate layer) is found on the first forward
    pass and captured from then on. Hooks stay registered but do nothing outside ``capture()``.
    """

    def __init__(self, model: nn.Module, layer_name: str | None = None) -> None:
        self._model = model
        self._layer_name = layer_name
        self._armed = False
        self._value: torch.Tensor | None = None
        self._handle: torch.utils.hooks.RemovableHandle | None = None
        self._resolved = False
        if layer_name is not None:
            modules = dict(model.named_modules())
            if layer_name not in modules:
                candidates = [n for n in modules if n][:20]
                raise ConfigurationError(
                    f"feature_layer {layer_name!r} is not a module of {type(model).__name__}; "
                    f"some of its modules: {candidates}"
                )
            self._handle = modules[layer_name].register_forward_hook(self._on_output)
            self._resolved = True

    @contextmanager
    def capture(self, logits_of: Callable[[Any], torch.Tensor]) -> Iterator[list[Any]]:
        """Arm the hooks around a forward pass; yields a one-item list to receive the output."""
        holder: list[Any] = []
        probes: list[tuple[str, nn.Linear, torch.utils.hooks.RemovableHandle]] = []
        seen: list[tuple[str, torch.Tensor, torch.Tensor]] = []
        probing = not self._resolved
        if probing:
            probes = self._probe_linears(seen)
        self._armed, self._value = True, None
        try:
            yield holder
        finally:
            self._armed = False
            for _, _, handle in probes:
                handle.remove()
        if probing and holder:
            self._resolve(seen, logits_of(holder[0]))

    def features(self) -> np.ndarray | None:
        """The features captured by the last ``capture()``, as ``(batch, d)`` numpy, or ``None``."""
        if self._value is None:
            return None
        return to_numpy(pool_features(self._value))

    def remove(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _on_input(self, module: nn.Module, args: tuple) -> None:
        if self._armed and args and isinstance(args[0], torch.Tensor):
            self._value = args[0].detach()

    def _on_output(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self._armed:
            tensor = _first_tensor(output)
            self._value = None if tensor is None else tensor.detach()

    def _probe_linears(self, seen: list) -> list:
        probes = []
        for name, module in self._model.named_modules():
            if isinstance(module, nn.Linear):
                def record(mod, args, output, _name=name):
                    if args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
                        seen.append((_name, args[0].detach(), output))
                probes.append((name, module, module.register_forward_hook(record)))
        return probes

    def _resolve(self, seen: list, logits: torch.Tensor) -> None:
        self._resolved = True
        matches = [(name, inp) for name, inp, out in seen if out.shape == logits.shape]
        if not matches:
            warnings.warn(
                f"ml-debugger: no nn.Linear producing the logits was found in {type(self._model).__name__}; "
                "features are not recorded (pass feature_layer='<module name>' to choose a layer)",
                stacklevel=4,
            )
            return
        name, first_input = matches[-1]
        module = dict(self._model.named_modules())[name]
        self._handle = module.register_forward_pre_hook(self._on_input)
        self._value = first_input
        logger.info("ml-debugger: recording the input of %r as features", name)
