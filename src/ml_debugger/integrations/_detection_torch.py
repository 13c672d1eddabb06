"""The torch side of detection in the callbacks: finding the detector inside a training module,
and keeping what its own eval-mode forward pass returned (with the family's features) so the
callback records it without running the model again."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.training.detection import DetectionTracer, detector_class


def find_detector(module: nn.Module, name: str | None = None) -> nn.Module | None:
    """The module ``name`` of ``module`` (``""``: itself), else the outermost of ``module`` and its
    submodules that is a detector of a recognised family, else None."""
    if name is not None:
        try:
            return module.get_submodule(name)
        except AttributeError as exc:
            raise ConfigurationError(f"detector_module {name!r} is not a submodule of {type(module).__name__}") from exc
    return next((m for m in module.modules() if detector_class(m) is not None), None)


@dataclass
class DetectorForward:
    """One eval-mode forward pass of the detector: its arguments, its output and the family's state."""

    args: tuple
    kwargs: dict[str, Any]
    output: Any
    state: dict[str, Any] = field(default_factory=dict)

    def images(self, exclude: tuple[str, ...] = ("targets", "labels")) -> Any:
        """What the detector was called with as images: its first positional argument, else its
        keyword arguments without ``exclude`` (Hugging Face: ``pixel_values``, ``pixel_mask``), or
        the only one left (``model(images=...)``)."""
        if self.args:
            return self.args[0]
        named = {k: v for k, v in self.kwargs.items() if k not in exclude and v is not None}
        return next(iter(named.values())) if len(named) == 1 and "pixel_values" not in named else named


class DetectorWatch:
    """Hooks on a detector that keep its last eval-mode forward pass while attached.

    A pre-hook arms the tracer's feature hooks (`DetectionTracer.watching`) and a forward hook
    keeps the output; training-mode passes (losses) are ignored. The model is never called here.
    """

    def __init__(self, detector: nn.Module, tracer: DetectionTracer) -> None:
        self.detector, self.tracer = detector, tracer
        self.last: DetectorForward | None = None
        self._handles: list[Any] = []
        self._armed: ExitStack | None = None
        self._state: dict[str, Any] = {}
        self._call: tuple[tuple, dict[str, Any]] | None = None

    def attach(self) -> None:
        if not self._handles:
            self._handles = [
                self.detector.register_forward_pre_hook(self._before, with_kwargs=True),
                self.detector.register_forward_hook(self._after, with_kwargs=True),
            ]

    def detach(self) -> None:
        self._disarm()
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def clear(self) -> None:
        self.last = None

    def take(self) -> DetectorForward:
        """The last eval-mode forward pass since `clear` (TraceValidationError if there was none)."""
        last, self.last = self.last, None
        if last is None:
            raise TraceValidationError(
                f"the detector ({type(self.detector).__name__}) ran no eval-mode forward pass in this step"
            )
        return last

    def _before(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        self._disarm()  # a pass that raised left its hooks armed
        if module.training:
            return
        self._armed = ExitStack()
        self._state = self._armed.enter_context(self.tracer.watching())
        self._call = (args, kwargs)

    def _after(self, module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        if self._call is None:
            return
        state = self._state
        self._disarm()
        self.last = DetectorForward(args, kwargs, output, state)

    def _disarm(self) -> None:
        if self._armed is not None:
            self._armed.close()
        self._armed, self._state, self._call = None, {}, None
