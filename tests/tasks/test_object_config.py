"""The detection tasks' settings: shared and own fields validated, errors naming the field."""

from __future__ import annotations

import pytest

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks.detection2d.config import DetectionConfig
from ml_debugger.tasks.detection3d.config import Detection3DConfig


@pytest.mark.parametrize("config", [DetectionConfig, Detection3DConfig])
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"confident_threshold": 0.0}, "confident_threshold must be in \\(0.0, 1.0\\]"),
        ({"k_neighbors": 0}, "k_neighbors must be at least 1"),
        ({"reference_dataset": ""}, "reference_dataset must be a non-empty string"),
        ({"operating_score": -1.0}, "operating_score must be in \\[0.0, inf\\)"),
        ({"colour": 1}, "unknown analysis option 'colour'"),
    ],
)
def test_shared_settings_are_checked(config, settings: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        config.from_kwargs(**settings)


def test_each_task_checks_its_own_settings() -> None:
    with pytest.raises(ConfigurationError, match="background_iou \\(0.6\\) must be below iou_threshold"):
        DetectionConfig(background_iou=0.6)
    with pytest.raises(ConfigurationError, match="near_distance \\(1.0\\) must be at least match_distance"):
        Detection3DConfig(near_distance=1.0)
    with pytest.raises(ConfigurationError, match="scale_error_max must be in"):
        Detection3DConfig(scale_error_max=2.0)
    assert DetectionConfig().to_dict()["iou_threshold"] == 0.5 and Detection3DConfig().min_recurrence == 2
