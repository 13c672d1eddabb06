"""Recording an output the model already gave (the callbacks' way): the same rows as tracing the
call, features included; a shared session; family lookup without building a tracer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ml_debugger.core import TraceSession
from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.store import LocalStore
from ml_debugger.training import ObjectDetectionTracer
from ml_debugger.training.detection import detector_class
from tests.integrations.tiny_detectors import images_and_targets, tiny_faster_rcnn
from tests.training.detection.conftest import read_rows

COLUMNS = ["input_id", "image_width", "image_height", "pred_scores", "pred_labels", "gt_labels"]


def test_observe_records_what_tracing_the_call_records(store: LocalStore) -> None:
    model = tiny_faster_rcnn().eval()
    images, targets = images_and_targets(3)
    called = ObjectDetectionTracer(model, "called", "v1", store=store)
    called(images, targets, input_ids=[0, 1, 2], dataset_type="val")
    session = TraceSession("observed", "v1", "detection2d", store=store)
    observed = ObjectDetectionTracer(model, session=session)
    assert observed.session is session
    with observed.watching() as state:
        output = model(images)  # the user's own forward
    observed.observe(output, images, targets, state=state, input_ids=[0, 1, 2])
    called.wait_for_save()
    observed.wait_for_save()

    a, b = read_rows(store, "called"), read_rows(store, "observed")
    assert sum(len(s) for s in b["pred_scores"]) > 0
    for column in COLUMNS:
        assert [np.asarray(v).tolist() for v in a[column]] == [np.asarray(v).tolist() for v in b[column]], column
    for column in ("pred_boxes", "pred_features", "gt_features"):
        for x, y in zip(a[column], b[column]):
            np.testing.assert_allclose(np.asarray(list(x), np.float64), np.asarray(list(y), np.float64), atol=1e-3)
    np.testing.assert_allclose(np.stack(a["image_features"]), np.stack(b["image_features"]), atol=1e-3)


def test_observe_without_state_records_no_object_features(store: LocalStore) -> None:
    model = tiny_faster_rcnn().eval()
    images, targets = images_and_targets(2)
    tracer = ObjectDetectionTracer(model, "m", "v1", store=store)
    with torch.no_grad():
        output = model(images)
    batch = tracer.batch_from_output(output, images, targets, image_sizes=[[96, 96], [96, 96]])
    assert batch.image_sizes.tolist() == [[96, 96], [96, 96]]
    assert batch.image_features is None and all(p.features is None for p in batch.predictions)
    with pytest.raises(TraceValidationError, match="image_sizes has 1 rows but the inputs have 2 images"):
        tracer.batch_from_output(output, images, targets, image_sizes=[[96, 96]])


def test_a_session_of_another_task_is_refused(store: LocalStore) -> None:
    session = TraceSession("m", "v1", "classification", store=store)
    with pytest.raises(ConfigurationError, match="session must be a detection2d TraceSession"):
        ObjectDetectionTracer(tiny_faster_rcnn().eval(), session=session)


def test_detector_class_recognises_families_only() -> None:
    assert detector_class(tiny_faster_rcnn()).__name__ == "FasterRCNNTracer"
    classifier = nn.Sequential(nn.Linear(4, 3))
    assert detector_class(classifier) is None
    assert detector_class(object()) is None
    # the factory still reads any torch module as torchvision-format
    assert type(ObjectDetectionTracer(classifier, "m", "v1")).__name__ == "TorchvisionStyleTracer"
