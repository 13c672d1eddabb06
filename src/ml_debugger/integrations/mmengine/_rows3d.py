"""MMDetection3D validation batches as 3-D detection rows, through the 3-D tracer's conversions.

The tracer of the model's family (thresholds from the head's ``test_cfg``, ``pc_range`` from the
voxel layer, BEV features from the neck) turns ``pred_instances_3d`` and the ground truth
(``gt_instances_3d``, else ``eval_ann_info``) into ``[cx, cy, cz, w, l, h, yaw]`` gravity-centre
boxes and counts the batch's points inside them; it never runs the model here. Ground-truth
boxes labelled -1 (classes the dataset's ``metainfo`` leaves out, which MMDetection3D's metrics
ignore) are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
from torch import nn

from ml_debugger.core import TraceSession
from ml_debugger.integrations.mmengine._batches import sample_ids
from ml_debugger.store import TraceStore
from ml_debugger.tasks.detection3d import Detection3DBatch
from ml_debugger.training.detection3d import (
    CustomDetection3DTracer,
    ObjectDetection3DTracer,
    detect_family,
    targets_from_samples,
)

class Rows3D:
    """Builds ``detection3d`` rows from a validation step's data batch and output data samples."""

    task = "detection3d"

    def __init__(
        self,
        model: nn.Module,
        model_name: str,
        version_name: str,
        *,
        label_names: Sequence[str] | None,
        record_features: bool,
        store: TraceStore | None,
        strict: bool,
    ) -> None:
        options = dict(label_names=label_names, record_features=record_features, store=store, strict=strict)
        if detect_family(model) is None:  # the data samples' format is known, whatever the family
            self._tracer = CustomDetection3DTracer(model, model_name, version_name, **options)
        else:
            self._tracer = ObjectDetection3DTracer(model, model_name, version_name, **options)

    @property
    def session(self) -> TraceSession:
        return self._tracer.session

    def watch(self) -> AbstractContextManager[None]:
        """Keep the BEV maps of the validation step about to run."""
        return self._tracer.watch()

    def batch(
        self, data_batch: dict[str, Any], outputs: Sequence[Any], indices: np.ndarray | None, dataset: Any = None
    ) -> Detection3DBatch:
        """The rows of the frames of ``data_batch`` (already without sampler padding); the ground
        truth is the data samples' own."""
        ids = sample_ids(outputs, self.task, indices)
        targets = [known_classes(frame) for frame in targets_from_samples(list(outputs))]
        return self._tracer.batch_of(data_batch, list(outputs), targets, input_ids=ids)

    def close(self) -> None:
        self._tracer.close()


def known_classes(frame: dict[str, Any]) -> dict[str, Any]:
    """A frame's ground truth without the boxes labelled -1 (every per-box array filtered alike)."""
    keep = np.asarray(frame["labels_3d"]) >= 0
    if keep.all():
        return frame
    return {key: value[keep] if isinstance(value, np.ndarray) and len(value) == len(keep) else value
            for key, value in frame.items()}

