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
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml_debugger.exceptions import NoDataError, ResultExistsError, StoreError, TraceValidationError
from ml_debugger.names import validate_name
from ml_debugger.store.base import PartInfo, PartKey, StoredResult, TraceStore
from ml_debugger.store.catalog import Catalog
from ml_debugger.store.partfiles import (
    ColumnTypes,
    canonical_table,
    common_column_types,
    common_schema,
    part_identity,
    type_difference,
)

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


RESULT_ROW_GROUP_BYTES = 8 * 2**20


def row_group_rows(table: pa.Table) -> int:
    """Rows per row group that keep a result table's row groups near ``RESULT_ROW_GROUP_BYTES``,
    so a reader filtering on a few rows (a preview, a page of samples) decodes little."""
    per_row = max(1, table.nbytes // max(1, table.num_rows))
    return max(256, min(max(1, table.num_rows), RESULT_ROW_GROUP_BYTES // per_row))


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

    def adopt_part(self, key: PartKey, source: Path, part_name: str) -> PartInfo | None:
        """Link a complete, checked Parquet part file (on this store's filesystem) into place.

        The first file linked under a part's name wins: ``None`` when the part is already stored
        (``source`` is left as it is). The part's run id and rank are read from the file.
        """
        relative = part_path(key, part_name)
        target = self.root / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)
        except FileExistsError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot store the part file {source} as {target}: {exc}") from exc
        return self.stored_part(key, part_name)

    def stored_part(self, key: PartKey, part_name: str) -> PartInfo | None:
        """The stored part ``part_name`` of ``key`` (committed or not) with the run and rank its rows hold, else ``None``."""
        relative = part_path(key, part_name)
        path = self.root / relative
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read the stored part {path}: {exc}") from exc
        rows, run_id, rank = part_identity(path)
        return PartInfo(key=key, path=relative.as_posix(), rows=rows, bytes=size, run_id=run_id, rank=rank)

    def version_columns(self, model_name: str, version_name: str) -> ColumnTypes | None:
        """The column types of the version's committed parts: a part's column must have the type
        recorded here, if any (None while nothing is committed)."""
        recorded = self.catalog.version_columns(model_name, version_name)
        if recorded is not None:
            return recorded
        committed = self.catalog.committed_paths(model_name, version_name, None)  # committed before they were recorded
        return common_column_types([self.root / p for p in committed], "the committed parts") if committed else None

    def commit_parts(self, parts: list[PartInfo]) -> None:
        """Commit the parts; TraceValidationError if their columns differ from each other or from the version's."""
        if not parts:
            return
        versions = {(p.key.model_name, p.key.version_name) for p in parts}
        for model_name, version_name in sorted(versions):
            mine = [p for p in parts if (p.key.model_name, p.key.version_name) == (model_name, version_name)]
            where = f"the parts committed to {model_name}/{version_name}"
            columns = common_column_types([self.root / p.path for p in mine], "the other parts of this commit")
            expected = self.version_columns(model_name, version_name)
            problem = None if expected is None or columns is None else type_difference(columns, expected, where)
            if problem is not None:
                raise TraceValidationError(f"nothing was committed: {problem}")
            self.catalog.commit_parts(mine, columns)

    def model_task(self, model_name: str) -> str:
        return self.catalog.model_task(model_name)

    def committed_epochs(self, model_name: str, version_name: str) -> list[int]:
        return self.catalog.committed_epochs(model_name, version_name)

    def committed_epochs_by_dataset(self, model_name: str, version_name: str) -> dict[str, list[int]]:
        return self.catalog.committed_epochs_by_dataset(model_name, version_name)

    def trace_parts(self, model_name: str, version_name: str, epochs: list[int] | None) -> tuple[pa.Schema, list[Path]]:
        """The canonical schema and the files of the committed parts of ``epochs`` (all when ``None``).

        NoDataError when nothing is committed; TraceValidationError when a column's type differs
        between parts (possible only for parts committed before the version's column types were recorded).
        """
        self.catalog.require_version(model_name, version_name)
        paths = [self.root / p for p in self.catalog.committed_paths(model_name, version_name, epochs)]
        if not paths:
            raise NoDataError(f"no committed traces for {model_name}/{version_name} in epochs {epochs}")
        try:
            return common_schema(paths, f"the other committed parts of {model_name}/{version_name}"), paths
        except StoreError as exc:
            raise StoreError(f"cannot read the traces of {model_name}/{version_name}: {exc}") from exc

    def iter_traces(self, schema: pa.Schema, paths: list[Path]) -> Iterator[pa.Table]:
        """The rows of ``paths`` one row group at a time, cast to ``schema`` (see ``trace_parts``)."""
        for path in paths:
            try:
                parquet = pq.ParquetFile(path)
                for index in range(parquet.num_row_groups):
                    yield canonical_table(parquet.read_row_group(index), schema)
            except (OSError, pa.ArrowException) as exc:
                raise StoreError(f"cannot read the trace part {path}: {exc}") from exc

    def read_traces(self, model_name: str, version_name: str, epochs: list[int] | None) -> pa.Table:
        schema, paths = self.trace_parts(model_name, version_name, epochs)
        return pa.concat_tables(list(self.iter_traces(schema, paths)))

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
                table = pa.Table.from_pandas(frame)
                pq.write_table(
                    table, staging / f"{validate_name(name, 'table name')}.parquet", row_group_size=row_group_rows(table)
                )
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
