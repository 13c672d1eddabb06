"""The embedded store: Parquet part files under ``MLD_HOME`` and a SQLite catalog beside them.

Layout::

    <home>/catalog.sqlite
    <home>/traces/model=<m>/version=<v>/dataset_type=<d>/epoch=<e>/part-<run>-r<rank>-<seq>.parquet
    <home>/results/model=<m>/version=<v>/<result>/meta.json and <table>.parquet
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml_debugger.exceptions import NoDataError, ResultExistsError, StoreError
from ml_debugger.names import validate_name
from ml_debugger.store.base import PartInfo, PartKey, StoredResult, TraceStore
from ml_debugger.store.catalog import Catalog

PARQUET_COMPRESSION = "snappy"


def partition_dir(key: PartKey) -> Path:
    """The directory of a partition, relative to the store root (hive-style, readable by DuckDB/Polars)."""
    return (
        Path("traces")
        / f"model={key.model_name}"
        / f"version={key.version_name}"
        / f"dataset_type={key.dataset_type}"
        / f"epoch={key.epoch}"
    )


def part_path(key: PartKey, part_name: str) -> Path:
    """Where part ``part_name`` of ``key`` lives, relative to the store root."""
    return partition_dir(key) / f"{validate_name(part_name, 'part_name')}.parquet"


def write_parquet_atomically(table: pa.Table, path: Path) -> int:
    """Write ``table`` to a hidden temporary file beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        scalar = [f.name for f in table.schema if not pa.types.is_nested(f.type)]
        strings = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type)]
        # Dictionary pages and statistics only where they pay: float vectors get neither.
        pq.write_table(
            table, tmp, compression=PARQUET_COMPRESSION, use_dictionary=strings, write_statistics=scalar
        )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path.stat().st_size


class LocalStore(TraceStore):
    """Parquet + SQLite store rooted at ``root``; safe for several threads and processes."""

    def __init__(self, root: str | os.PathLike[str], *, database_url: str | None = None) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store directory {self.root}: {exc}") from exc
        self.catalog = Catalog(database_url or self.root / "catalog.sqlite")

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def register_version(self, model_name: str, version_name: str, task: str) -> None:
        self.catalog.register_version(model_name, version_name, task)

    def write_part(self, key: PartKey, table: pa.Table, part_name: str, run_id: str, rank: int) -> PartInfo:
        relative = part_path(key, part_name)
        try:
            size = write_parquet_atomically(table, self.root / relative)
        except OSError as exc:
            raise StoreError(f"cannot write trace part {self.root / relative}: {exc}") from exc
        return PartInfo(key=key, path=relative.as_posix(), rows=table.num_rows, bytes=size, run_id=run_id, rank=rank)

    def adopt_part(self, key: PartKey, source: Path, part_name: str, run_id: str, rank: int) -> PartInfo:
        """Move a complete, checked Parquet part file (on this store's filesystem) into place atomically."""
        relative = part_path(key, part_name)
        target = self.root / relative
        try:
            rows = pq.ParquetFile(source).metadata.num_rows
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            size = target.stat().st_size
        except (OSError, pa.ArrowInvalid) as exc:
            raise StoreError(f"cannot store the part file {source} as {target}: {exc}") from exc
        return PartInfo(key=key, path=relative.as_posix(), rows=rows, bytes=size, run_id=run_id, rank=rank)

    def stored_part(self, key: PartKey, part_name: str, run_id: str, rank: int) -> PartInfo | None:
        """The part ``part_name`` of ``key`` if a ``write_part`` wrote it (committed or not), else ``None``."""
        relative = part_path(key, part_name)
        try:
            rows = pq.ParquetFile(self.root / relative).metadata.num_rows
            size = (self.root / relative).stat().st_size
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowInvalid) as exc:
            raise StoreError(f"cannot read the stored part {self.root / relative}: {exc}") from exc
        return PartInfo(key=key, path=relative.as_posix(), rows=rows, bytes=size, run_id=run_id, rank=rank)

    def commit_parts(self, parts: list[PartInfo]) -> None:
        if parts:
            self.catalog.commit_parts(parts)

    def model_task(self, model_name: str) -> str:
        return self.catalog.model_task(model_name)

    def committed_epochs(self, model_name: str, version_name: str) -> list[int]:
        return self.catalog.committed_epochs(model_name, version_name)

    def committed_epochs_by_dataset(self, model_name: str, version_name: str) -> dict[str, list[int]]:
        return self.catalog.committed_epochs_by_dataset(model_name, version_name)

    def read_traces(self, model_name: str, version_name: str, epochs: list[int] | None) -> pa.Table:
        self.catalog.require_version(model_name, version_name)
        paths = self.catalog.committed_paths(model_name, version_name, epochs)
        if not paths:
            raise NoDataError(f"no committed traces for {model_name}/{version_name} in epochs {epochs}")
        try:
            tables = [pq.read_table(self.root / p) for p in paths]
            return pa.concat_tables(tables, promote_options="default")
        except (OSError, pa.ArrowInvalid) as exc:
            raise StoreError(f"cannot read the traces of {model_name}/{version_name}: {exc}") from exc

    def _result_dir(self, model_name: str, version_name: str, result_name: str) -> Path:
        return self.root / "results" / f"model={model_name}" / f"version={version_name}" / result_name

    def save_result(self, model_name: str, version_name: str, result_name: str, result: StoredResult) -> None:
        self.catalog.require_version(model_name, version_name)
        if self.catalog.has_result(model_name, version_name, result_name):
            raise ResultExistsError(
                f"a result named {result_name!r} already exists for {model_name}/{version_name}; "
                "choose another result_name"
            )
        final = self._result_dir(model_name, version_name, result_name)
        staging = final.with_name(f".{result_name}.{uuid.uuid4().hex[:8]}.tmp")
        staging.mkdir(parents=True)
        try:
            for name, frame in result.tables.items():
                pq.write_table(pa.Table.from_pandas(frame), staging / f"{validate_name(name, 'table name')}.parquet")
            (staging / "meta.json").write_text(json.dumps(result.meta, indent=2, default=str))
            if final.exists():  # left by a save that crashed before its catalog row was written
                shutil.rmtree(final)
            os.replace(staging, final)
            self.catalog.add_result(model_name, version_name, result_name, result.meta)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def result_table_path(self, model_name: str, version_name: str, result_name: str, table: str) -> Path:
        """The Parquet file of one table of a stored result; NoDataError if there is none."""
        meta = self.catalog.result_meta(model_name, version_name, result_name)
        path = self._result_dir(model_name, version_name, result_name) / f"{validate_name(table, 'table name')}.parquet"
        if not path.is_file():
            raise NoDataError(f"result {meta['result_name']!r} of {model_name}/{version_name} has no table {table!r}")
        return path

    def result_tables(self, model_name: str, version_name: str, result_name: str) -> list[str]:
        """The names of the tables of a stored result; NoDataError if there is no such result."""
        self.catalog.result_meta(model_name, version_name, result_name)
        directory = self._result_dir(model_name, version_name, result_name)
        return [path.stem for path in sorted(directory.glob("*.parquet"))]

    def load_result(self, model_name: str, version_name: str, result_name: str) -> StoredResult:
        meta = self.catalog.result_meta(model_name, version_name, result_name)
        directory = self._result_dir(model_name, version_name, result_name)
        tables = {path.stem: pq.read_table(path).to_pandas() for path in sorted(directory.glob("*.parquet"))}
        return StoredResult(meta=meta, tables=tables)

    def list_results(self, model_name: str, version_name: str) -> pd.DataFrame:
        self.catalog.require_version(model_name, version_name)
        metas = self.catalog.results(model_name, version_name)
        columns = ["result_name", "created_at", "n_epoch", "epochs", "datasets", "rows"]
        return pd.DataFrame([{c: m.get(c) for c in columns} for m in metas], columns=columns)
