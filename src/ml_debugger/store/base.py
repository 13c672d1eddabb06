"""The one narrow interface between the tracing engine / evaluator and where data lives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa


@dataclass(frozen=True)
class PartKey:
    """Where a part file belongs: the partition of one model version's traces."""

    model_name: str
    version_name: str
    dataset_type: str
    epoch: int


@dataclass(frozen=True)
class PartInfo:
    """A part file written whole and renamed into place; ``path`` is relative to the store root."""

    key: PartKey
    path: str
    rows: int
    bytes: int
    run_id: str
    rank: int


@dataclass(frozen=True)
class StoredResult:
    """An evaluation result as the store keeps it: metadata and named tables."""

    meta: dict[str, Any]
    tables: dict[str, pd.DataFrame]


@dataclass(frozen=True)
class EvaluationRequest:
    """What ``Evaluator.request_evaluation`` asks for (validated, JSON-serialisable).

    ``n_epoch`` is ``"latest"``, an int epoch, or ``None`` for every committed epoch;
    ``thresholds`` are ``AnalysisConfig`` overrides.
    """

    result_name: str | None
    n_epoch: str | int | None
    thresholds: dict[str, Any]


class TraceStore(ABC):
    """Operations the tracers, callbacks and the evaluator need from a store."""

    def submit_evaluation(
        self, model_name: str, version_name: str, request: EvaluationRequest, *, progress: bool = False
    ) -> StoredResult | None:
        """Run an evaluation where the traces live when that is not this process, and return its
        stored result; ``None`` (the default) means the caller evaluates here, on ``read_traces``."""
        return None

    def wait_for_uploads(self, timeout: float | None = None) -> bool:
        """Wait for writes that go on in the background (a server's uploads), at most ``timeout`` seconds
        (the store's own bound when ``None``); whether all were done. Stores that write at once return True."""
        return True

    @abstractmethod
    def register_version(self, model_name: str, version_name: str, task: str) -> None:
        """Create the model and version if new; raise if the model exists with another task."""

    @abstractmethod
    def write_part(self, key: PartKey, table: pa.Table, part_name: str, run_id: str, rank: int) -> PartInfo:
        """Write ``table`` as one part file atomically; it stays invisible until committed."""

    @abstractmethod
    def commit_parts(self, parts: list[PartInfo]) -> None:
        """Make the parts visible to the evaluator, all or none; committing twice is a no-op."""

    @abstractmethod
    def model_task(self, model_name: str) -> str:
        """The task a model was registered with; NoDataError if unknown."""

    @abstractmethod
    def committed_epochs(self, model_name: str, version_name: str) -> list[int]:
        """Sorted epochs with committed data; NoDataError if the model or version is unknown."""

    def committed_epochs_by_dataset(self, model_name: str, version_name: str) -> dict[str, list[int]]:
        """Sorted committed epochs of each dataset; read from the traces here, a store with a
        catalog answers it directly."""
        table = self.read_traces(model_name, version_name, None).select(["dataset_type", "epoch"])
        pairs = table.to_pandas().drop_duplicates().sort_values(["dataset_type", "epoch"])
        return {str(d): [int(e) for e in group["epoch"]] for d, group in pairs.groupby("dataset_type")}

    @abstractmethod
    def read_traces(self, model_name: str, version_name: str, epochs: list[int] | None) -> pa.Table:
        """Every committed row of the version in ``epochs`` (all epochs when ``None``)."""

    @abstractmethod
    def save_result(self, model_name: str, version_name: str, result_name: str, result: StoredResult) -> None:
        """Persist a result; ResultExistsError if the name is taken."""

    @abstractmethod
    def load_result(self, model_name: str, version_name: str, result_name: str) -> StoredResult:
        """A stored result; NoDataError if there is none of that name."""

    @abstractmethod
    def list_results(self, model_name: str, version_name: str) -> pd.DataFrame:
        """Stored results of the version: name, created_at, n_epoch, epochs."""
