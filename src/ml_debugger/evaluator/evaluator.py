"""Evaluator: turn the committed traces of a model version into a stored :class:`Result`."""

from __future__ import annotations

import sys
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pandas as pd

from ml_debugger._version import __version__
from ml_debugger.evaluator.coverage_note import missing_datasets
from ml_debugger.evaluator.previews import previews_table
from ml_debugger.evaluator.result import Result
from ml_debugger.exceptions import ConfigurationError, NoDataError
from ml_debugger.names import validate_name
from ml_debugger.store import StoredResult, TraceStore, open_store
from ml_debugger.store.base import EvaluationRequest
from ml_debugger.tasks import get_task

if TYPE_CHECKING:
    from ml_debugger.evaluator.compare import Comparison


def normalize_n_epoch(n_epoch: object) -> str | int | None:
    """``n_epoch`` checked and as plain Python ("latest", an int, or None for all epochs)."""
    if n_epoch is None or isinstance(n_epoch, str) and n_epoch == "latest":
        return n_epoch
    if (
        isinstance(n_epoch, (bool, str))
        or not isinstance(n_epoch, int) and not hasattr(n_epoch, "__index__")
        or int(n_epoch) < 0
    ):
        raise ConfigurationError(f"unknown n_epoch {n_epoch!r}; expected 'latest', an int >= 0, or None")
    return int(n_epoch)


def resolve_epochs(n_epoch: object, committed: list[int]) -> list[int]:
    """The epochs that ``n_epoch`` ("latest", an int, or None for all) selects among ``committed``."""
    n_epoch = normalize_n_epoch(n_epoch)
    if n_epoch is None:
        return list(committed)
    if n_epoch == "latest":
        return [max(committed)]
    epoch = int(n_epoch)
    if epoch not in committed:
        raise NoDataError(f"epoch {epoch} has no committed traces; committed epochs: {committed}")
    return [epoch]


def evaluate_version(
    store: TraceStore, model_name: str, version_name: str, request: EvaluationRequest, *, progress: bool = False
) -> StoredResult:
    """Evaluate committed traces in this process with the version's task and save the result in ``store``."""
    task = get_task(store.model_task(model_name))
    evaluation = task.evaluation()
    config = evaluation.make_config(request.thresholds)
    n_epoch, result_name = request.n_epoch, request.result_name
    if result_name is not None:
        validate_name(result_name, "result_name")
    committed = store.committed_epochs(model_name, version_name)
    if not committed:
        raise NoDataError(
            f"{model_name}/{version_name} has no committed traces; call tracer.wait_for_save() "
            "after tracing"
        )
    epochs = resolve_epochs(n_epoch, committed)
    traces = store.read_traces(model_name, version_name, epochs)
    output = evaluation.evaluate(traces, config, progress=progress)
    samples = output.tables["samples"]
    tables = dict(output.tables)
    previews = previews_table(traces)
    if previews is not None:
        tables["previews"] = previews
    created = datetime.now(timezone.utc)
    name = result_name or f"eval-{created:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    meta = {
        "result_name": name,
        "model_name": model_name,
        "version_name": version_name,
        "task": task.name,
        "n_epoch": "all" if n_epoch is None else str(n_epoch),
        "epochs": epochs,
        "datasets": sorted(samples["dataset"].unique().tolist()),
        "missing_datasets": missing_datasets(
            store.committed_epochs_by_dataset(model_name, version_name), epochs, samples, config.reference_dataset
        ),
        **output.meta,
        "config": config.to_dict(),
        "created_at": created.isoformat(),
        "ml_debugger_version": __version__,
    }
    stored = StoredResult(meta=meta, tables=tables)
    store.save_result(model_name, version_name, name, stored)
    return stored


class Evaluator:
    """Evaluates the traces of one model version (reference-compatible).

    Args:
        model_name, version_name: the names the traces were recorded under.
        store: a store to read from; by default the one the environment selects.
    """

    def __init__(self, model_name: str, version_name: str, *, store: TraceStore | None = None) -> None:
        self.model_name = validate_name(model_name, "model_name")
        self.version_name = validate_name(version_name, "version_name")
        self.store = store if store is not None else open_store()

    def request_evaluation(
        self,
        result_name: str | None = None,
        n_epoch: str | int | None = "latest",
        *,
        progress: bool | None = None,
        **thresholds: Any,
    ) -> Result:
        """Evaluate committed traces and store the result under ``result_name``.

        Args:
            result_name: the name to store the result under; generated when ``None``.
            n_epoch: ``"latest"`` (the highest committed epoch), an epoch number, or ``None`` for
                every committed epoch (enables the across-epoch signals).
            progress: show a progress bar; by default when stderr is a terminal.
            **thresholds: analysis settings overriding the defaults (see the README).
        """
        if result_name is not None:
            validate_name(result_name, "result_name")
        n_epoch = normalize_n_epoch(n_epoch)
        config = get_task(self.store.model_task(self.model_name)).evaluation().make_config(thresholds)
        request = EvaluationRequest(
            result_name=result_name,
            n_epoch=n_epoch,
            thresholds={name: getattr(config, name) for name in thresholds},
        )
        show = sys.stderr.isatty() if progress is None else progress
        stored = self.store.submit_evaluation(self.model_name, self.version_name, request, progress=show)
        if stored is None:
            stored = evaluate_version(self.store, self.model_name, self.version_name, request, progress=show)
        return Result(stored.meta, stored.tables)

    def list_results(self) -> pd.DataFrame:
        """Stored results of this version: result_name, created_at, n_epoch, epochs, datasets, rows."""
        return self.store.list_results(self.model_name, self.version_name)

    def get_result(self, result_name: str) -> Result:
        """A stored result by name."""
        stored = self.store.load_result(self.model_name, self.version_name, validate_name(result_name, "result_name"))
        return Result(stored.meta, stored.tables)

    def compare(self, baseline: str | Result, candidate: str | Result, **options: Any) -> Comparison:
        """Compare two results unit by unit: fixed, newly broken, metrics, categories, codes, hotspots.

        Each of ``baseline`` and ``candidate`` is a ``Result`` or a stored result's reference:
        ``"result"`` (of this version), ``"version/result"`` (of this model) or
        ``"model/version/result"``; ``@latest`` as the result names the newest one. ``options`` are
        those of :func:`ml_debugger.evaluator.compare.compare_results` (``baseline_epoch``,
        ``candidate_epoch``, ``datasets``, ``hotspot_min_jaccard``).
        """
        from ml_debugger.evaluator.compare import compare_results
        from ml_debugger.evaluator.compare.refs import load_result

        sides = [side if isinstance(side, Result) else load_result(self.store, side, self.model_name, self.version_name)
                 for side in (baseline, candidate)]
        return compare_results(*sides, **options)
