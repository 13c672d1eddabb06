"""ForwardCapture: logits and features taken from hooks while someone else runs the model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.training._hooks import ForwardCapture


class Wrapper(nn.Module):
    """Like a LightningModule whose step calls a child model and a scalar metric module."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
        self.criterion = nn.CrossEntropyLoss()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.model(x), y)


def test_finds_the_child_that_produces_logits_and_its_head_input() -> None:
    module = Wrapper().eval()
    capture = ForwardCapture(module)
    capture.attach()
    head_inputs = []
    module.model[2].register_forward_pre_hook(lambda m, args: head_inputs.append(args[0]))
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    for _ in range(2):  # the first batch finds the modules, the second uses the resolved hooks
        capture.clear()
        with torch.no_grad():
            module.step(x, y)
        expected_features = head_inputs[-1].numpy()
        logits, features = capture.take(5)
        np.testing.assert_allclose(features, expected_features, rtol=1e-6)
        np.testing.assert_allclose(logits, module.model(x).detach().numpy(), rtol=1e-6)
    assert capture.logits_module == "model"
    capture.detach()
    assert not capture.attached
    module.step(x, y)
    assert capture.take(5) == (None, None)


def test_outer_call_without_logits_does_not_hide_them() -> None:
    module = Wrapper().eval()
    capture = ForwardCapture(module, logits_module="model", record_features=False)
    capture.attach()
    with torch.no_grad():
        module.model(torch.randn(2, 4))
    logits, features = capture.take(2)
    assert logits.shape == (2, 3) and features is None


def test_disabled_capture_records_nothing() -> None:
    module = Wrapper()
    capture = ForwardCapture(module, logits_module="model")
    capture.attach()
    capture.enabled = False
    module.model(torch.randn(2, 4))
    assert capture.take(2) == (None, None)


def test_named_feature_layer_is_pooled() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    capture = ForwardCapture(model, logits_module="", feature_layer="0")
    capture.attach()
    model(torch.randn(3, 3, 8, 8))
    logits, features = capture.take(3)
    assert logits.shape == (3, 2) and features.shape == (3, 4)


def test_unknown_module_names_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="feature_layer 'nope' is not a module of Wrapper"):
        ForwardCapture(Wrapper(), feature_layer="nope")
