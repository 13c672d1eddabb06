"""A trace session: one run of one model version recording through the shared engine."""

from __future__ import annotations

import atexit
import logging
import numbers
import os
import uuid
import warnings
import weakref
from datetime import datetime, timezone

from ml_debugger.core.schema import RowContext
from ml_debugger.core.writer import PartWriter, TraceBatch
from ml_debugger.exceptions import ConfigurationError, MLDebuggerError, TraceValidationError
from ml_debugger.names import validate_name
from ml_debugger.store import TraceStore, open_store
from ml_debugger.store.base import PartKey

logger = logging.getLogger(__name__)

UNTAGGED_EPOCH = 0


def validate_epoch(n_epoch: object, field: str = "n_epoch") -> int:
    """A non-negative int epoch (numpy integers accepted); ``None`` is not handled here."""
    if isinstance(n_epoch, bool) or not isinstance(n_epoch, numbers.Integral) or int(n_epoch) < 0:
        raise ConfigurationError(f"{field} must be a non-negative int or None; got {n_epoch!r}")
    return int(n_epoch)


def rank_from_environment() -> int:
    """The process rank that launchers (torchrun, Lightning, accelerate) export, else 0."""
    for name in ("RANK", "GLOBAL_RANK", "SLURM_PROCID"):
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 0


class TraceSession:
    """Records batches of one model version, writes them in the background, commits epochs.

    Every tracer and framework callback records through a session. Rows traced without an epoch
    are recorded as epoch 0. ``commit`` makes recorded epochs visible to the evaluator without
    waiting on the network (a server's store uploads in the background); ``wait_for_save`` also
    waits, bounded, for those uploads.

    Args:
        model_name, version_name: names under which the traces are stored.
        task: the name of a registered task (``"classification"``, see ``ml_debugger.tasks``); a
            model keeps one task.
        store: where to write; by default the store the environment selects (``open_store``).
        rank: process rank stored on every row; by default from the launcher's environment.
        strict: raise on non-finite model outputs instead of warning.
        rows_per_part, flush_interval, max_queued_batches: writer tuning (see ``PartWriter``).
    """

    def __init__(
        self,
        model_name: str,
        version_name: str,
        task: str,
        *,
        store: TraceStore | None = None,
        rank: int | None = None,
        strict: bool = False,
        rows_per_part: int = 16384,
        flush_interval: float = 5.0,
        max_queued_batches: int = 64,
    ) -> None:
        self.model_name = validate_name(model_name, "model_name")
        self.version_name = validate_name(version_name, "version_name")
        from ml_debugger.tasks import get_task  # the task registry builds on core.schema

        self.task = get_task(task).name
        self.strict = strict
        self.store = store if store is not None else open_store()
        self.rank = rank_from_environment() if rank is None else int(rank)
        self.run_id = uuid.uuid4().hex[:16]
        self.store.register_version(self.model_name, self.version_name, task)
        self._writer = PartWriter(
            self.store, run_id=self.run_id, rank=self.rank, rows_per_part=rows_per_part,
            flush_interval=flush_interval, max_queued_batches=max_queued_batches,
        )
        self._pending_epochs: set[int] = set()
        self._committed = False
        self._warned_nonfinite = False
        self._closed = False
        atexit.register(_close_at_exit, weakref.ref(self))

    def record(
        self,
        batch: TraceBatch,
        *,
        dataset_type: str,
        n_epoch: int | None = None,
        global_step: int | None = None,
        final_validation: bool | None = None,
    ) -> None:
        """Queue one validated batch of rows for writing."""
        epoch = UNTAGGED_EPOCH if n_epoch is None else validate_epoch(n_epoch)
        dataset_type = validate_name(dataset_type, "dataset_type")
        nonfinite = getattr(batch, "nonfinite_rows", 0)
        if nonfinite:
            self._report_nonfinite(nonfinite, len(batch), dataset_type, epoch)
        context = RowContext(
            model_name=self.model_name, version_name=self.version_name, dataset_type=dataset_type,
            epoch=epoch, global_step=None if global_step is None else int(global_step),
            final_validation=final_validation, rank=self.rank, run_id=self.run_id,
            timestamp=datetime.now(timezone.utc),
        )
        key = PartKey(self.model_name, self.version_name, dataset_type, epoch)
        self._writer.put(key, context, batch)
        self._pending_epochs.add(epoch)

    def flush(self) -> None:
        """Block until every recorded batch is in a part file on disk (not yet committed)."""
        self._writer.flush()

    def commit(self, n_epoch: int | None = None) -> None:
        """Flush, then commit ``n_epoch`` (every epoch recorded since the last save when ``None``).

        Waits for the local writer only, never for the network: with a server, the commit is spooled
        and sent after the epoch's parts (framework callbacks commit this way, so training never waits).

        Raises:
            ConfigurationError: ``n_epoch`` names an epoch nothing was recorded for while other
                epochs are waiting (the reference's rule: pass the n_epoch you traced with).
            WriterError: the background writer failed.
        """
        if n_epoch is None:
            epochs = set(self._pending_epochs)
        else:
            epoch = validate_epoch(n_epoch)
            if epoch not in self._pending_epochs and self._pending_epochs:
                raise ConfigurationError(
                    f"wait_for_save(n_epoch={epoch}) but nothing was traced with n_epoch={epoch} since the "
                    f"last save; epochs waiting to be saved: {sorted(self._pending_epochs)} "
                    "(pass the n_epoch you traced with, or None for all)"
                )
            epochs = {epoch} & self._pending_epochs
        self._writer.flush()
        if not epochs:
            logger.debug("commit: nothing new to commit")
            return
        parts = self._writer.take_parts(epochs)
        self.store.commit_parts(parts)
        self._committed = True
        self._pending_epochs -= epochs
        logger.info(
            "committed %d rows of %s/%s, epochs %s",
            sum(p.rows for p in parts), self.model_name, self.version_name, sorted(epochs),
        )

    def wait_for_save(self, n_epoch: int | None = None) -> None:
        """``commit``, then wait for the store's background uploads: with a server, until the epochs are
        committed there or ``MLD_UPLOAD_TIMEOUT`` seconds have passed (a warning then names what is still
        spooled; uploads go on in the background). Raises like ``commit``, never because of the network."""
        self.commit(n_epoch)
        self.store.wait_for_uploads()

    def close(self, wait_for_uploads: bool = True) -> None:
        """Write what is buffered and stop the writer; uncommitted epochs are reported.

        When something was committed, also wait (bounded, as ``wait_for_save``) for the store's
        uploads unless ``wait_for_uploads`` is False, so an evaluation right after training sees
        every committed epoch.
        """
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        if self._pending_epochs:
            warnings.warn(
                f"ml-debugger: epochs {sorted(self._pending_epochs)} of {self.model_name}/{self.version_name} "
                "were traced and written but never committed; call wait_for_save() to make them evaluable",
                stacklevel=2,
            )
        if wait_for_uploads and self._committed:
            self.store.wait_for_uploads()

    def _report_nonfinite(self, count: int, batch_size: int, dataset_type: str, epoch: int) -> None:
        message = (
            f"{count} of {batch_size} rows of {dataset_type!r} epoch {epoch} have NaN or infinite model "
            "outputs; they are recorded and reported by the evaluator"
        )
        if self.strict:
            raise TraceValidationError(message + " (strict=True)")
        if not self._warned_nonfinite:
            self._warned_nonfinite = True
            warnings.warn("ml-debugger: " + message + "; further batches are not reported", stacklevel=4)


def _close_at_exit(session_ref: weakref.ref) -> None:
    session = session_ref()
    if session is None:
        return
    try:
        session.close(wait_for_uploads=False)  # at exit the store reports what is still spooled
    except MLDebuggerError:
        logger.error("ml-debugger: could not write the last traces at exit", exc_info=True)
