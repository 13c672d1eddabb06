"""DetectionTracer: what every 2-D detection tracer shares (framework-free).

A family's tracer reads its images, runs the model exactly as the user would, and turns a copy
of the output into one standard record per image; this base validates the ground truth, applies
the thresholds the tracer promises, builds the batch and hands it to the trace session.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ml_debugger.core import TraceSession
from ml_debugger.core.previews import encode_previews
from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.store import TraceStore
from ml_debugger.tasks.detection2d import (
    DetectionBatch,
    ImageTargets,
    Thresholds,
    make_detection_batch,
    predictions_from,
    targets_from,
)
from ml_debugger.training.detection._arrays import (
    ImageBatch,
    clip_boxes,
    id_hashes,
    ids_to_numpy,
    post_filter,
    targets_to_numpy,
    to_numpy,
)
from ml_debugger.training.detection._thresholds import (
    ThresholdPolicy,
    resolve,
    validate_requested,
)


@dataclass
class Adapted:
    """A family adapter's reading of one model output.

    Attributes:
        predictions: per image, ``boxes`` ``(m, 4)`` xyxy in pixels of the input image, ``scores``,
            ``labels`` and optionally ``features`` ``(m, d)``, as numpy.
        image_features: ``(batch, d)`` one vector per image, or None.
        gt_features: per image ``(n, d)`` one vector per ground-truth object, or None.
    """

    predictions: list[dict[str, np.ndarray]]
    image_features: np.ndarray | None = None
    gt_features: list[np.ndarray] | None = None


class DetectionTracer:
    """The base of the 2-D detection tracers that `ObjectDetectionTracer` returns.

    ``tracer(inputs, targets, input_ids=..., dataset_type=..., n_epoch=...)`` runs the model,
    records one row per image and returns the model's own output unchanged;
    ``tracer.record(predictions, targets, ...)`` records predictions made elsewhere;
    ``tracer.observe(output, inputs, targets, ...)`` records an output the model already gave
    (a framework callback's way: no second forward pass).

    Attributes:
        family: the model family this tracer reads (``"torchvision Faster R-CNN"``).
        score_thresh, iou_thresh, max_detections_per_image: the thresholds used and recorded
            (``iou_thresh`` is None for families without NMS).
        num_classes: the model's number of class ids when known (ground-truth labels must be
            below it), else None.
        label_names: the name of class ``i`` at position ``i`` when known, else None.
    """

    family: ClassVar[str] = "predictions made elsewhere"
    policy: ClassVar[ThresholdPolicy] = ThresholdPolicy(model_applies=False)

    def __init__(
        self,
        model: Any,
        model_name: str | None,
        version_name: str | None,
        score_thresh: float | None = None,
        iou_thresh: float | None = None,
        max_detections_per_image: int | None = None,
        *,
        record_features: bool = True,
        previews: bool = False,
        label_names: Sequence[str] | None = None,
        num_classes: int | None = None,
        strict: bool = False,
        store: TraceStore | None = None,
        session: TraceSession | None = None,
    ) -> None:
        self.model = model
        self.record_features = record_features
        self.previews = previews
        requested = validate_requested(score_thresh, iou_thresh, max_detections_per_image)
        self._thresholds, self._limits = resolve(requested, self._model_thresholds(), self.policy)
        self.num_classes = num_classes if num_classes is not None else self._model_num_classes()
        names = label_names if label_names is not None else self._model_label_names()
        self.label_names = None if names is None else tuple(str(n) for n in names)
        self._warned_sizes = False
        if session is None:
            session = TraceSession(model_name, version_name, "detection2d", store=store, rank=self._rank(), strict=strict)
        elif session.task != "detection2d":
            raise ConfigurationError(f"session must be a detection2d TraceSession; got one of task {session.task!r}")
        self._session = session

    # -- what the tracer exposes ---------------------------------------------------------------

    @property
    def thresholds(self) -> Thresholds:
        """The thresholds used, as recorded on every row."""
        return self._thresholds

    @property
    def score_thresh(self) -> float | None:
        return self._thresholds.score_thresh

    @property
    def iou_thresh(self) -> float | None:
        return self._thresholds.iou_thresh

    @property
    def max_detections_per_image(self) -> int | None:
        return self._thresholds.max_detections

    @property
    def session(self) -> TraceSession:
        return self._session

    def __repr__(self) -> str:
        t = self._thresholds
        return (
            f"{type(self).__name__}(family={self.family!r}, score_thresh={t.score_thresh}, "
            f"iou_thresh={t.iou_thresh}, max_detections_per_image={t.max_detections})"
        )

    # -- tracing ---------------------------------------------------------------------------------

    def __call__(
        self,
        inputs: Any,
        targets: Any,
        input_ids: Any = None,
        dataset_type: str = "train",
        n_epoch: int | None = None,
        global_step: int | None = None,
    ) -> Any:
        """Run the model on ``inputs``, record one row per image, return the model's output unchanged.

        Args:
            inputs: the images as the family takes them (see docs/detection-tracing.md).
            targets: ground truth, a list of per-image dicts with ``boxes`` ``(n, 4)`` xyxy pixels
                and ``labels`` ``(n,)``, or a dict of per-image lists (tensors, arrays or lists).
            input_ids: one id per image (ints or strings); the image hashes when omitted.
            dataset_type, n_epoch, global_step: tags of the rows (epoch 0 when omitted).
        """
        images = self._read_images(inputs)
        truth = self._read_targets(targets, len(images))
        output, state = self._run(inputs)
        batch = self._adapted_batch(output, state, images, truth, input_ids)
        self._session.record(batch, dataset_type=dataset_type, n_epoch=n_epoch, global_step=global_step)
        return output

    @contextmanager
    def watching(self) -> Iterator[dict[str, Any]]:
        """Keep what the family reads besides the output (features) while the model runs inside
        the block; yields the dict to pass as ``state=`` to `observe` / `batch_from_output`."""
        with self._armed() as state:
            yield state

    def batch_from_output(
        self,
        output: Any,
        inputs: Any,
        targets: Any,
        *,
        state: Mapping[str, Any] | None = None,
        input_ids: Any = None,
        image_sizes: Any = None,
    ) -> DetectionBatch:
        """The detection batch of an output the model already gave for ``inputs`` (not recorded).

        Args:
            output: what the model returned (read through the family's adapter, never modified).
            inputs, targets, input_ids: as for ``__call__``.
            state: what `watching` kept during that forward pass (features); None records none.
            image_sizes: ``(batch, 2)`` width, height to record instead of the input's sizes,
                for families whose boxes are relative to the image (DETR): the original images'
                sizes, as a post-processor's ``target_sizes``.
        """
        images = self._read_images(inputs)
        if image_sizes is not None:
            sizes = np.asarray(to_numpy(image_sizes), dtype=np.int64).reshape(-1, 2)
            if len(sizes) != len(images):
                raise TraceValidationError(f"image_sizes has {len(sizes)} rows but the inputs have {len(images)} images")
            images = dataclasses.replace(images, sizes=sizes)
        truth = self._read_targets(targets, len(images))
        return self._adapted_batch(output, self._observed_state(output, inputs, state or {}), images, truth, input_ids)

    def observe(
        self,
        output: Any,
        inputs: Any,
        targets: Any,
        *,
        state: Mapping[str, Any] | None = None,
        input_ids: Any = None,
        image_sizes: Any = None,
        dataset_type: str = "val",
        n_epoch: int | None = None,
        global_step: int | None = None,
    ) -> None:
        """Record an output the model already gave for ``inputs`` (no second forward pass); the
        arguments are those of `batch_from_output` and the row tags of ``__call__``."""
        batch = self.batch_from_output(
            output, inputs, targets, state=state, input_ids=input_ids, image_sizes=image_sizes
        )
        self._session.record(batch, dataset_type=dataset_type, n_epoch=n_epoch, global_step=global_step)

    def record(
        self,
        predictions: Sequence[Mapping[str, Any]],
        targets: Any,
        input_ids: Any = None,
        dataset_type: str = "train",
        n_epoch: int | None = None,
        global_step: int | None = None,
        *,
        image_sizes: Any = None,
        input_hashes: Any = None,
    ) -> None:
        """Record predictions made elsewhere, without running a model.

        Args:
            predictions: per image, a dict with ``boxes`` ``(m, 4)`` xyxy pixels, ``scores``,
                ``labels`` and optionally ``features`` ``(m, d)``; recorded as given (not filtered).
            targets: ground truth, as for ``__call__``.
            input_ids: one id per image; needed unless ``input_hashes`` is given.
            image_sizes: ``(batch, 2)`` width, height per image. Without them each image's size
                is taken as the extent of its boxes (with a warning).
            input_hashes: content hashes of the images; the hashes of the ids when omitted.
        """
        if isinstance(predictions, Mapping) or not isinstance(predictions, Sequence):
            raise TraceValidationError(
                f"predictions must be a list of per-image dicts with 'boxes', 'scores', 'labels'; "
                f"got {type(predictions).__name__}"
            )
        raw = [{k: to_numpy(v) for k, v in p.items()} if isinstance(p, Mapping) else p for p in predictions]
        truth = self._read_targets(targets, len(raw))
        ids = ids_to_numpy(input_ids)
        if input_hashes is not None:
            hashes = to_numpy(input_hashes)
        elif ids is None:
            raise TraceValidationError("record() needs input_ids or input_hashes: there are no images to hash")
        elif len(ids) != len(raw):
            raise TraceValidationError(f"input_ids has {len(ids)} entries but predictions has {len(raw)} images")
        else:
            hashes = id_hashes(ids)
        sizes = self._extent_sizes(raw, truth) if image_sizes is None else to_numpy(image_sizes)
        batch = self._make_batch(raw, truth, sizes, hashes, ids, None, None)
        self._session.record(batch, dataset_type=dataset_type, n_epoch=n_epoch, global_step=global_step)

    def flush(self) -> None:
        """Block until everything traced so far is written to disk (not yet committed)."""
        self._session.flush()

    def wait_for_save(self, n_epoch: int | None = None) -> None:
        """Flush and commit ``n_epoch`` (every traced epoch when ``None``) so it can be evaluated."""
        self._session.wait_for_save(n_epoch)

    def close(self) -> None:
        """Write what is buffered and stop the writer."""
        self._session.close()

    # -- what a family provides ------------------------------------------------------------------

    def _model_thresholds(self) -> Thresholds:
        """The thresholds the model itself has (None where it has none)."""
        return Thresholds()

    def _model_num_classes(self) -> int | None:
        return None

    def _model_label_names(self) -> Sequence[str] | None:
        return None

    def _rank(self) -> int | None:
        """The rank of an initialised torch process group, else None (the session reads ``RANK``).
        Torch is asked only when something already imported it."""
        if "torch" not in sys.modules:
            return None
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank()
        return None

    def _read_images(self, inputs: Any) -> ImageBatch:
        """Sizes and hashes of the images in ``inputs``; TraceValidationError for a bad input."""
        raise NotImplementedError

    def _run(self, inputs: Any) -> tuple[Any, Any]:
        """Run the model as the user would: ``(the model's own output, anything _adapt needs)``."""
        raise NotImplementedError

    def _adapt(self, output: Any, state: Any, images: ImageBatch, targets: list[ImageTargets]) -> Adapted:
        """Read a copy of the model's output (never modify it)."""
        raise NotImplementedError

    @contextmanager
    def _armed(self) -> Iterator[dict[str, Any]]:
        """Hooks that keep what `_adapt` reads besides the output, during the block (none here)."""
        yield {}

    def _observed_state(self, output: Any, inputs: Any, captured: Mapping[str, Any]) -> Any:
        """The ``state`` `_adapt` reads for an output the model gave outside `_run`."""
        return captured

    # -- shared steps ----------------------------------------------------------------------------

    def _read_targets(self, targets: Any, batch: int) -> list[ImageTargets]:
        truth = targets_from(targets_to_numpy(targets), batch)
        if self.num_classes is not None:
            for i, image in enumerate(truth):
                bad = image.labels[image.labels >= self.num_classes]
                if len(bad):
                    raise TraceValidationError(
                        f"targets[{i}]['labels'] has class ids {sorted(set(bad.tolist()))[:5]} outside "
                        f"[0, {self.num_classes}): the model has {self.num_classes} class ids"
                    )
        return truth

    def _finish(self, prediction: dict[str, np.ndarray], size: np.ndarray) -> dict[str, np.ndarray]:
        """Clip to the image, then apply the limits the model's own post-processing did not."""
        width, height = (float(s) for s in size)
        prediction = {**prediction, "boxes": clip_boxes(prediction["boxes"], width, height)}
        return post_filter(prediction, self._limits)

    def _extent_sizes(self, predictions: list[Any], truth: list[ImageTargets]) -> np.ndarray:
        if not self._warned_sizes:
            self._warned_sizes = True
            warnings.warn(
                "ml-debugger: record() without image_sizes takes each image's size from the extent of its boxes; "
                "pass image_sizes=(batch, 2) width, height to record the real sizes",
                stacklevel=3,
            )
        sizes = []
        for p, t in zip(predictions, truth):
            boxes = [np.asarray(t.boxes, np.float64).reshape(-1, 4)]
            if isinstance(p, Mapping) and "boxes" in p:
                boxes.append(np.asarray(p["boxes"], np.float64).reshape(-1, 4))
            corners = np.concatenate(boxes)
            finite = corners[np.isfinite(corners).all(axis=1)]
            far = finite[:, 2:].max(axis=0) if len(finite) else np.ones(2)
            sizes.append([max(math.ceil(far[0]), 1), max(math.ceil(far[1]), 1)])
        return np.asarray(sizes, np.int64)

    def _adapted_batch(
        self, output: Any, state: Any, images: ImageBatch, truth: list[ImageTargets], input_ids: Any
    ) -> DetectionBatch:
        adapted = self._adapt(output, state, images, truth)
        predictions = [self._finish(p, size) for p, size in zip(adapted.predictions, images.sizes)]
        return self._make_batch(
            predictions, truth, images.sizes, images.hashes, ids_to_numpy(input_ids),
            adapted.image_features, adapted.gt_features,
            previews=encode_previews(images.pixels) if self.previews else None,
        )

    def _make_batch(
        self,
        raw: list[Any],
        truth: list[ImageTargets],
        sizes: np.ndarray,
        hashes: np.ndarray,
        ids: np.ndarray | None,
        image_features: np.ndarray | None,
        gt_features: list[np.ndarray] | None,
        previews: list[bytes] | None = None,
    ) -> DetectionBatch:
        predictions = predictions_from(raw)
        if gt_features is not None:
            truth = [dataclasses.replace(t, features=f) for t, f in zip(truth, gt_features)]
        return make_detection_batch(
            predictions, truth, input_hashes=hashes, image_sizes=sizes, input_ids=ids,
            image_features=image_features, thresholds=self._thresholds, label_names=self.label_names,
            previews=previews,
        )


class PredictionsTracer(DetectionTracer):
    """``ObjectDetectionTracer(None, ...)``: records predictions made elsewhere with ``record()``.

    Its thresholds are the ones given (None: unknown); predictions are recorded as given.
    """

    family = "predictions made elsewhere"
    policy = ThresholdPolicy(model_applies=False, given_only=True)

    def _read_images(self, inputs: Any) -> ImageBatch:
        raise ConfigurationError(
            "this tracer has no model (ObjectDetectionTracer(None, ...)); record predictions made elsewhere "
            "with tracer.record(predictions, targets, input_ids=..., image_sizes=...)"
        )
