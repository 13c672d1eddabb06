"""ClassificationTracer on real torch models: output unchanged, features found, ids and hashes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.store import LocalStore
from ml_debugger.training import ClassificationTracer


def traced_rows(store: LocalStore, model_name: str = "m"):
    return store.read_traces(model_name, "v1", None).to_pandas()


def images(n: int = 6, size: int = 32) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


class TimmStyle(nn.Module):
    """A model with the timm split: forward_features, then a pooled head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 5)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x).mean(dim=(2, 3)))


def tiny_vit() -> nn.Module:
    return torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=7
    )


@pytest.mark.parametrize(
    ("factory", "n_classes", "feature_dim"),
    [
        (lambda: torchvision.models.resnet18(weights=None, num_classes=4), 4, 512),
        (tiny_vit, 7, 16),
        (lambda: torchvision.models.efficientnet_b0(weights=None, num_classes=3), 3, 1280),
        (lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 24), nn.ReLU(), nn.Linear(24, 6)), 6, 24),
        (TimmStyle, 5, 8),
    ],
    ids=["resnet18", "vit", "efficientnet_b0", "sequential", "timm_style"],
)
def test_penultimate_features_are_found(store: LocalStore, factory, n_classes: int, feature_dim: int) -> None:
    model = factory().eval()
    tracer = ClassificationTracer(model, model_name="m", version_name="v1", store=store)
    x = images()
    y = torch.arange(6) % n_classes
    with torch.no_grad():
        expected = model(x)
        for _ in range(2):  # the first call finds the layer, the second uses the hook
            out = tracer(x, y, input_ids=torch.arange(6), dataset_type="val")
    torch.testing.assert_close(out, expected)
    tracer.wait_for_save()
    rows = traced_rows(store)
    assert len(rows) == 12
    assert all(len(f) == feature_dim for f in rows["features"])
    np.testing.assert_allclose(np.stack(rows["scores"][:6]), expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.stack(rows["features"][:6]), np.stack(rows["features"][6:]), rtol=1e-5)


def test_features_equal_the_head_input(store: LocalStore) -> None:
    model = torchvision.models.resnet18(weights=None, num_classes=4).eval()
    captured = {}
    model.fc.register_forward_pre_hook(lambda m, args: captured.setdefault("x", args[0].clone()))
    tracer = ClassificationTracer(model, model_name="m", version_name="v1", store=store)
    with torch.inference_mode():
        tracer(images(), torch.zeros(6, dtype=torch.long), dataset_type="val")
    tracer.wait_for_save()
    np.testing.assert_allclose(np.stack(traced_rows(store)["features"]), captured["x"].numpy(), rtol=1e-6)


def test_named_feature_layer_records_its_pooled_output(store: LocalStore) -> None:
    model = torchvision.models.resnet18(weights=None, num_classes=4).eval()
    tracer = ClassificationTracer(model, "m", "v1", feature_layer="layer3", store=store)
    with torch.no_grad():
        tracer(images(), torch.zeros(6, dtype=torch.long), dataset_type="val")
    tracer.wait_for_save()
    assert {len(f) for f in traced_rows(store)["features"]} == {256}


def test_unknown_feature_layer_names_candidates(store: LocalStore) -> None:
    with pytest.raises(ConfigurationError, match="feature_layer 'nope' is not a module.*'conv1'"):
        ClassificationTracer(torchvision.models.resnet18(weights=None), "m", "v1", feature_layer="nope", store=store)


def test_ids_default_to_input_hashes_and_ids_of_any_form(store: LocalStore) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    tracer = ClassificationTracer(model, "m", "v1", store=store)
    x = torch.randn(4, 12)
    y = np.array([0, 1, 2, 0])
    with torch.no_grad():
        tracer(x, y, dataset_type="a")
        tracer(x, y.tolist(), input_ids=[10, 11, 12, 13], dataset_type="b")
        tracer(x, torch.tensor(y), input_ids=np.array(["p", "q", "r", "s"]), dataset_type="c")
        tracer(x.double().float(), y, input_ids=torch.tensor([5, 6, 7, 8]), dataset_type="d")
    tracer.wait_for_save()
    rows = traced_rows(store).set_index("dataset_type")
    assert list(rows.loc["a", "input_id"]) == list(rows.loc["a", "input_hash"])
    assert list(rows.loc["b", "input_id"]) == ["10", "11", "12", "13"]
    assert list(rows.loc["c", "input_id"]) == ["p", "q", "r", "s"]
    assert list(rows.loc["d", "input_id"]) == ["5", "6", "7", "8"]
    assert list(rows.loc["a", "input_hash"]) == list(rows.loc["d", "input_hash"])  # same inputs, same hash


def test_dict_inputs_and_hf_style_outputs(store: LocalStore) -> None:
    class TextModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(50, 8)
            self.classifier = nn.Linear(8, 2)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
            pooled = (self.embed(input_ids) * attention_mask[..., None]).mean(1)
            return {"logits": self.classifier(pooled)}

    tracer = ClassificationTracer(TextModel(), "m", "v1", store=store)
    batch = {"input_ids": torch.randint(0, 50, (3, 5)), "attention_mask": torch.ones(3, 5)}
    with torch.no_grad():
        out = tracer(batch, torch.tensor([0, 1, 1]), dataset_type="val")
    assert set(out) == {"logits"}
    tracer.wait_for_save()
    rows = traced_rows(store)
    assert len(rows) == 3 and {len(f) for f in rows["features"]} == {8}


def test_works_with_gradients_enabled(store: LocalStore) -> None:
    model = nn.Sequential(nn.Linear(4, 3))
    tracer = ClassificationTracer(model, "m", "v1", store=store)
    out = tracer(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]), dataset_type="train")
    out.sum().backward()  # the output still carries its graph
    assert model[0].weight.grad is not None
    tracer.wait_for_save()
    assert len(traced_rows(store)) == 5


def test_bad_labels_are_reported_before_anything_is_recorded(store: LocalStore) -> None:
    tracer = ClassificationTracer(nn.Linear(4, 3), "m", "v1", store=store)
    with pytest.raises(TraceValidationError, match=r"labels must be class indices in \[0, 3\)"):
        tracer(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(TraceValidationError, match="labels has 3 rows but the model output has 2"):
        tracer(torch.randn(2, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(TraceValidationError, match="input_ids has 1 entries"):
        tracer(torch.randn(2, 4), torch.tensor([0, 1]), input_ids=[7])
    tracer.wait_for_save()
    assert store.committed_epochs("m", "v1") == []


def test_record_features_false_and_models_without_linear_head(store: LocalStore) -> None:
    tracer = ClassificationTracer(nn.Linear(4, 3), "m", "v1", record_features=False, store=store)
    with torch.no_grad():
        tracer(torch.randn(2, 4), torch.tensor([0, 1]))
    conv_head = nn.Sequential(nn.Conv2d(3, 3, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    tracer2 = ClassificationTracer(conv_head, "m2", "v1", store=store)
    with pytest.warns(UserWarning, match="no nn.Linear producing the logits"):
        with torch.no_grad():
            tracer2(images(2), torch.tensor([0, 2]))
    tracer.wait_for_save()
    tracer2.wait_for_save()
    assert "features" not in traced_rows(store).columns
    assert "features" not in traced_rows(store, "m2").columns


def test_not_a_module_is_rejected(store: LocalStore) -> None:
    with pytest.raises(TypeError, match="torch.nn.Module"):
        ClassificationTracer(lambda x: x, "m", "v1", store=store)
