"""Stored results as the pages read them: every table but the per-unit ones, kept in a small cache.

A stored result never changes (its name cannot be reused), so its small tables and the filter
values of its sample table are cached; the per-unit ``samples`` table (and ``previews``, if
any) stays on disk and is read a page at a time (see `samples`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import pandas as pd
import pyarrow.parquet as pq
from fastapi import Request

from ml_debugger.evaluator.result import Result
from ml_debugger.exceptions import ConfigurationError, NoDataError
from ml_debugger.names import validate_name
from ml_debugger.server.dashboard.sample_source import SampleSource
from ml_debugger.server.dashboard.samples import Facets, facets
from ml_debugger.store.local import LocalStore

SAMPLES = "samples"
PREVIEWS = "previews"
_ON_DISK = (SAMPLES, PREVIEWS)
SAMPLE_SOURCES = 4
"""Samples tables kept open (each in memory up to ``sample_source.CACHE_BYTES``)."""
T = TypeVar("T")


@dataclass(frozen=True, order=True)
class ResultRef:
    """One stored result: ``model/version/result``."""

    model: str
    version: str
    result: str

    @classmethod
    def parse(cls, text: str) -> ResultRef:
        parts = text.split("/")
        if len(parts) != 3:
            raise ConfigurationError(f"a result is named model/version/result; got {text!r}")
        return cls.of(*parts)

    @classmethod
    def of(cls, model: str, version: str, result: str) -> ResultRef:
        return cls(
            validate_name(model, "model_name"), validate_name(version, "version_name"),
            validate_name(result, "result_name"),
        )

    def __str__(self) -> str:
        return f"{self.model}/{self.version}/{self.result}"


class _Recent(Generic[T]):
    """The last ``capacity`` values computed per result (thread-safe)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._values: OrderedDict[ResultRef, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ref: ResultRef, compute: Callable[[], T]) -> T:
        with self._lock:
            if ref in self._values:
                self._values.move_to_end(ref)
                return self._values[ref]
        value = compute()
        with self._lock:
            self._values[ref] = value
            while len(self._values) > self._capacity:
                self._values.popitem(last=False)
        return value


class ResultReader:
    """Reads the results of ``store``, caching what the pages ask for again and again."""

    def __init__(self, store: LocalStore, capacity: int = 16) -> None:
        self.store = store
        self._results: _Recent[Result] = _Recent(capacity)
        self._facets: _Recent[Facets] = _Recent(capacity)
        self._samples: _Recent[SampleSource] = _Recent(SAMPLE_SOURCES)

    def result(self, ref: ResultRef) -> Result:
        """The result with every table but ``samples`` and ``previews``; NoDataError if unknown."""
        return self._results.get(ref, lambda: self._load(ref))

    def _load(self, ref: ResultRef) -> Result:
        meta = self.store.catalog.result_meta(ref.model, ref.version, ref.result)
        names = self.store.result_tables(ref.model, ref.version, ref.result)
        return Result(meta, {name: self.table(ref, name) for name in names if name not in _ON_DISK})

    def samples(self, ref: ResultRef) -> SampleSource:
        """The result's samples table (kept in memory while small, for the last few results)."""
        return self._samples.get(ref, lambda: SampleSource(self.table_path(ref, SAMPLES)))

    def facets(self, ref: ResultRef) -> Facets:
        """The filter values of the result's sample table."""
        return self._facets.get(ref, lambda: facets(self.samples(ref)))

    def table(self, ref: ResultRef, table: str) -> pd.DataFrame:
        """One table of the result, read now (not cached)."""
        return pq.read_table(self.table_path(ref, table)).to_pandas()

    def table_path(self, ref: ResultRef, table: str = SAMPLES) -> Path:
        """The Parquet file of one table of the result; NoDataError if it has none."""
        return self.store.result_table_path(ref.model, ref.version, ref.result, table)

    def has_table(self, ref: ResultRef, table: str) -> bool:
        try:
            self.table_path(ref, table)
        except NoDataError:
            return False
        return True


def reader(request: Request) -> ResultReader:
    """The app's result reader (a FastAPI dependency)."""
    return request.app.state.dashboard_results
