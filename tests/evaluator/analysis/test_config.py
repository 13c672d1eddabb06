import dataclasses

import pytest

from ml_debugger.evaluator.analysis.config import AnalysisConfig
from ml_debugger.exceptions import ConfigurationError


def test_defaults_are_documented_and_valid():
    config = AnalysisConfig()
    assert config.reference_dataset == "train"
    assert config.confident_threshold == 0.8
    assert config.low_margin == 0.2
    assert config.coverage_percentile_max == 95.0
    assert config.cluster_error_rate == 0.5
    doc = AnalysisConfig.__doc__
    for field in dataclasses.fields(AnalysisConfig):
        assert f"{field.name}:" in doc, f"{field.name} is not documented"
        assert f"({field.default}" in doc or field.name == "reference_dataset", (
            f"the default of {field.name} is not in the docstring"
        )


def test_from_kwargs_overrides_and_is_frozen():
    config = AnalysisConfig.from_kwargs(confident_threshold=0.9, k_neighbors=5)
    assert config.confident_threshold == 0.9
    assert config.k_neighbors == 5
    assert config.low_margin == AnalysisConfig().low_margin
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.low_margin = 0.5  # type: ignore[misc]
    assert config.to_dict()["k_neighbors"] == 5
    assert AnalysisConfig(**config.to_dict()) == config


def test_unknown_key_names_it_and_lists_the_valid_ones():
    with pytest.raises(ConfigurationError) as info:
        AnalysisConfig.from_kwargs(confidence_threshold=0.9)
    message = str(info.value)
    assert "'confidence_threshold'" in message
    for field in dataclasses.fields(AnalysisConfig):
        assert field.name in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "key, value",
    [
        ("confident_threshold", 0.0),
        ("confident_threshold", 1.5),
        ("low_margin", -0.1),
        ("coverage_percentile_max", 101),
        ("cluster_error_rate", 0),
        ("ambiguous_entropy", -1.0),
        ("k_neighbors", 0),
        ("n_folds", 1),
        ("min_cluster_size", 1),
        ("max_cluster_points", 5),
        ("unstable_min_flips", 0),
        ("k_neighbors", 2.5),
        ("k_neighbors", True),
        ("low_margin", "0.2"),
        ("low_margin", float("nan")),
        ("reference_dataset", ""),
    ],
)
def test_out_of_range_values_are_rejected_with_the_key_and_value(key, value):
    with pytest.raises(ConfigurationError, match=key):
        AnalysisConfig.from_kwargs(**{key: value})


def test_numpy_numbers_are_accepted():
    np = pytest.importorskip("numpy")
    config = AnalysisConfig.from_kwargs(k_neighbors=np.int64(7), low_margin=np.float32(0.25))
    assert config.k_neighbors == 7


def test_the_user_documentation_lists_every_setting_with_its_default():
    from pathlib import Path

    doc = (Path(__file__).parents[3] / "README.md").read_text()
    for field in dataclasses.fields(AnalysisConfig):
        default = f'"{field.default}"' if isinstance(field.default, str) else str(field.default)
        assert f"| `{field.name}` | {default} |" in doc, field.name
