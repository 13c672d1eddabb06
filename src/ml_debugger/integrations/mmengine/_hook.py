"""``MLDebuggerHook``: MMEngine validation and test loops traced from a config file."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop, IterBasedTrainLoop

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.integrations._common import TracingGuard, check_every_n, check_names
from ml_debugger.integrations.mmengine._batches import subset, task_of
from ml_debugger.integrations.mmengine._rows2d import Rows2D
from ml_debugger.integrations.mmengine._rows3d import Rows3D
from ml_debugger.integrations.mmengine._sampling import SamplePlan, plan_of
from ml_debugger.names import validate_name
from ml_debugger.store import TraceStore

logger = logging.getLogger(__name__)

TASKS = ("detection3d", "detection2d")


@HOOKS.register_module()
class MLDebuggerHook(Hook):
    """Records every validation (and test) sample's predictions and ground truth, tagged with the
    epoch, and commits each epoch when its validation ends.

    In a config::

        custom_imports = dict(imports=["ml_debugger.integrations.mmengine"], allow_failed_imports=False)
        custom_hooks = [dict(type="MLDebuggerHook", model_name="pointpillars", version_name="v1")]

    Args:
        model_name, version_name: names the traces are stored under.
        task: ``"detection3d"`` or ``"detection2d"``; by default read from the data samples
            (``pred_instances_3d`` / ``gt_instances_3d``: 3-D, ``pred_instances``: 2-D).
        dataset_type, test_dataset_type: the dataset_type of the validation and test loops'
            rows; ``test_dataset_type=None`` leaves the test loop untraced.
        interval: trace every ``interval``-th validation run (1: all; 0: none).
        label_names: class names by label; by default the evaluation dataset's ``classes``.
        record_features: record per-box BEV features of 3-D models (sampled from the neck's maps).
        previews: store a JPEG of each 2-D image input (at most 128 px) for the dashboard (off by
            default; 3-D frames have none).
        store: where to write (by default the store the environment selects).
        strict: raise tracing failures instead of warning once and letting training go on.

    Epochs are ``runner.epoch`` (MMEngine's count of finished epochs: the validation after the
    first epoch is epoch 1, as its checkpoint ``epoch_1.pth``), or ``runner.iter`` for
    iteration-based training; 0 for a validation or test run in a process that trains nothing.
    """

    priority = "LOW"  # after the hooks that change the model or the outputs

    def __init__(
        self,
        model_name: str,
        version_name: str,
        *,
        task: str | None = None,
        dataset_type: str = "val",
        test_dataset_type: str | None = "test",
        interval: int = 1,
        label_names: Sequence[str] | None = None,
        record_features: bool = True,
        previews: bool = False,
        store: TraceStore | None = None,
        strict: bool = False,
    ) -> None:
        check_names(None, model_name, version_name)
        if task is not None and task not in TASKS:
            raise ConfigurationError(f"task must be None or one of {', '.join(TASKS)}; got {task!r}")
        self.model_name, self.version_name, self.task = model_name, version_name, task
        self.dataset_type = validate_name(dataset_type, "dataset_type")
        self.test_dataset_type = (
            None if test_dataset_type is None else validate_name(test_dataset_type, "test_dataset_type")
        )
        self.interval = check_every_n(interval, "interval")
        self.label_names = None if label_names is None else [str(n) for n in label_names]
        self.record_features, self.previews = record_features, previews
        self._store = store
        self._guard = TracingGuard("mmengine", strict=strict)
        self._rows: Rows2D | Rows3D | None = None
        self._plan: SamplePlan | None = None
        self._dataset: Any = None
        self._loop: tuple[str, int, bool] | None = None  # (dataset_type, epoch, final) of the traced loop
        self._watching = ExitStack()
        self._training = False
        self._validations = 0

    # -- MMEngine events -------------------------------------------------------------------------

    def before_train(self, runner: Any) -> None:
        self._training = True

    def after_train(self, runner: Any) -> None:
        self._training = False

    def before_val_epoch(self, runner: Any) -> None:
        self._validations += 1
        due = bool(self.interval) and self._validations % self.interval == 0
        self._start(runner, runner.val_dataloader, self.dataset_type if due else None)

    def before_test_epoch(self, runner: Any) -> None:
        self._start(runner, runner.test_dataloader, self.test_dataset_type)

    def before_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self._watch(runner, data_batch)

    def before_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self._watch(runner, data_batch)

    def after_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self._trace(runner, data_batch, outputs)

    def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self._trace(runner, data_batch, outputs)

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        self._commit()

    def after_test_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        self._commit()

    def after_run(self, runner: Any) -> None:
        self._watching.close()
        if self._rows is not None:
            with self._guard("closing the trace session"):
                self._rows.close()
            self._rows = None

    # -- the work --------------------------------------------------------------------------------

    def _start(self, runner: Any, loader: Any, dataset_type: str | None) -> None:
        self._loop = None
        if dataset_type is None:
            return
        with self._guard("preparing to trace the evaluation loop"):
            self._plan, self._dataset = plan_of(loader), getattr(loader, "dataset", None)
            if self._plan is None:
                logger.info(
                    "ml-debugger: the %s sampler %s is not MMEngine's DefaultSampler; its padding, if any, is "
                    "removed by the evaluator's de-duplication",
                    dataset_type, type(getattr(loader, "sampler", None)).__name__,
                )
            if self.label_names is None:
                classes = getattr(getattr(loader, "dataset", None), "metainfo", {}).get("classes")
                self.label_names = None if classes is None else [str(c) for c in classes]
            self._loop = (dataset_type, _epoch(runner), not self._training)

    def _watch(self, runner: Any, data_batch: Any) -> None:
        if self._loop is None:
            return
        with self._guard("preparing to trace a batch"):
            if self._rows is None:
                task = self.task or task_of(data_batch.get("data_samples") if isinstance(data_batch, dict) else None)
                if task is not None:
                    self._open(runner, task)
            if self._rows is not None:
                self._watching.enter_context(self._rows.watch())

    def _trace(self, runner: Any, data_batch: Any, outputs: Any) -> None:
        if self._loop is None:
            return
        with self._guard("tracing a batch"):
            self._watching.close()
            # Advance the sample plan first, so that a batch that fails to trace keeps the next ones in place.
            keep, indices = (None, None) if self._plan is None else self._plan.take(len(outputs))
            if self._rows is None:
                self._open(runner, self.task or task_of(outputs, required=True))
            if keep is not None and not keep.all():
                data_batch, outputs = subset(data_batch, outputs, keep)
            if len(outputs) == 0:
                return
            dataset_type, epoch, final = self._loop
            batch = self._rows.batch(data_batch, outputs, indices, self._dataset)
            self._rows.session.record(
                batch, dataset_type=dataset_type, n_epoch=epoch, global_step=runner.iter if self._training else None,
                final_validation=final,
            )

    def _open(self, runner: Any, task: str) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        common = dict(label_names=self.label_names, store=self._store, strict=self._guard.strict)
        if task == "detection3d":
            self._rows = Rows3D(
                model, self.model_name, self.version_name, record_features=self.record_features, **common
            )
        else:
            self._rows = Rows2D(
                model, self.model_name, self.version_name, rank=get_rank(), previews=self.previews, **common
            )

    def _commit(self) -> None:
        if self._loop is None:
            return
        dataset_type, epoch, _ = self._loop
        self._loop = None
        if self._rows is None:
            return
        with self._guard(f"committing the {dataset_type} traces of epoch {epoch}"):
            self._rows.session.commit()


def _epoch(runner: Any) -> int:
    """``runner.epoch`` (``runner.iter`` for iteration-based training), 0 when nothing was trained.

    Reads ``runner._train_loop`` as MMEngine's own ``LogProcessor`` does: asking ``runner.epoch``
    outside training would build the training loop (and its dataloader).
    """
    loop = getattr(runner, "_train_loop", None)
    if not isinstance(loop, BaseLoop):
        return 0
    return loop.iter if isinstance(loop, IterBasedTrainLoop) else loop.epoch
