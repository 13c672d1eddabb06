"""The spool: what a remote store has written locally and not yet handed to the server.

Local first, upload second: every part file, version registration and commit manifest is written
here (whole, renamed into place) before it is sent, and removed once the server has it. After a
crash or an outage the spool is what ``mldebugger sync`` uploads. One spool per server::

    <MLD_HOME>/spool/<endpoint id>/endpoint.json
    .../versions/<model>/<version>.json                    registrations not yet confirmed
    .../traces/model=<m>/version=<v>/dataset_type=<d>/epoch=<e>/<part>.parquet (+ <part>.json)
    .../commits/<time>-<id>.json                            commit manifests not yet committed
    .../rejected/...                                        what the server refused, with the reason

Part names carry the run id and rank, so several processes can share a spool.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from ml_debugger.exceptions import StoreError
from ml_debugger.store.base import PartInfo, PartKey
from ml_debugger.store.local import part_path, write_parquet_atomically


def part_to_json(info: PartInfo) -> dict[str, Any]:
    """A part's description as the spool and the server's commit route take it."""
    return {
        "model_name": info.key.model_name, "version_name": info.key.version_name,
        "dataset_type": info.key.dataset_type, "epoch": info.key.epoch, "part_name": Path(info.path).stem,
        "path": info.path, "rows": info.rows, "bytes": info.bytes, "run_id": info.run_id, "rank": info.rank,
    }


def part_from_json(data: dict[str, Any]) -> PartInfo:
    key = PartKey(data["model_name"], data["version_name"], data["dataset_type"], int(data["epoch"]))
    return PartInfo(
        key=key, path=data["path"], rows=int(data["rows"]), bytes=int(data["bytes"]),
        run_id=data["run_id"], rank=int(data["rank"]),
    )


def write_json_atomically(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class SpooledPart:
    """A part file waiting in the spool: its description and where its bytes are."""

    info: PartInfo
    file: Path

    @property
    def sidecar(self) -> Path:
        return self.file.with_suffix(".json")

    @property
    def part_name(self) -> str:
        return self.file.stem


@dataclass(frozen=True)
class CommitManifest:
    """Parts to commit together on the server, recorded by ``wait_for_save``."""

    file: Path
    parts: list[PartInfo]


class Spool:
    """The spool directory of one server endpoint."""

    def __init__(self, root: Path, endpoint: str) -> None:
        self.root = root
        self.endpoint = endpoint
        try:
            write_json_atomically({"endpoint": endpoint}, root / "endpoint.json")
        except OSError as exc:
            raise StoreError(f"cannot create the upload spool {root}: {exc}") from exc

    @classmethod
    def for_endpoint(cls, home: Path, endpoint: str) -> Spool:
        """The spool of ``endpoint`` under ``home`` (``MLD_HOME``)."""
        endpoint = endpoint.rstrip("/")
        digest = hashlib.sha256(endpoint.encode()).hexdigest()[:16]
        return cls(Path(home) / "spool" / digest, endpoint)

    @classmethod
    def existing(cls, home: Path) -> list[Spool]:
        """Every spool under ``home``."""
        found = []
        for marker in sorted((Path(home) / "spool").glob("*/endpoint.json")):
            found.append(cls(marker.parent, json.loads(marker.read_text())["endpoint"]))
        return found

    def __repr__(self) -> str:
        return f"Spool({str(self.root)!r}, endpoint={self.endpoint!r})"

    def add_registration(self, model_name: str, version_name: str, task: str) -> Path:
        path = self.root / "versions" / model_name / f"{version_name}.json"
        write_json_atomically({"model_name": model_name, "version_name": version_name, "task": task}, path)
        return path

    def registrations(self) -> list[tuple[Path, dict[str, str]]]:
        return [(p, json.loads(p.read_text())) for p in sorted((self.root / "versions").glob("*/*.json"))]

    def add_part(self, key: PartKey, table: pa.Table, part_name: str, run_id: str, rank: int) -> SpooledPart:
        """Write a part (its description first, then its bytes, each atomically)."""
        relative = part_path(key, part_name)
        file = self.root / relative
        info = PartInfo(key=key, path=relative.as_posix(), rows=table.num_rows, bytes=0, run_id=run_id, rank=rank)
        write_json_atomically(part_to_json(info), file.with_suffix(".json"))
        size = write_parquet_atomically(table, file)
        return SpooledPart(info=PartInfo(key, info.path, info.rows, size, run_id, rank), file=file)

    def parts(self) -> list[SpooledPart]:
        """Spooled parts, oldest first (a description whose bytes are not there is skipped)."""
        found = []
        for sidecar in (self.root / "traces").rglob("*.json"):
            file = sidecar.with_suffix(".parquet")
            try:
                stat = file.stat()
                info = part_from_json(json.loads(sidecar.read_text()))
            except FileNotFoundError:  # being written, uploaded by another process, or torn by a crash
                continue
            spooled = SpooledPart(PartInfo(info.key, info.path, info.rows, stat.st_size, info.run_id, info.rank), file)
            found.append((stat.st_mtime_ns, info.path, spooled))
        return [spooled for _, _, spooled in sorted(found, key=lambda item: item[:2])]

    def add_commit(self, parts: list[PartInfo]) -> CommitManifest:
        file = self.root / "commits" / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        write_json_atomically([part_to_json(p) for p in parts], file)
        return CommitManifest(file=file, parts=list(parts))

    def commits(self) -> list[CommitManifest]:
        return [
            CommitManifest(file, [part_from_json(p) for p in json.loads(file.read_text())])
            for file in sorted((self.root / "commits").glob("*.json"))
        ]

    def remove_part(self, part: SpooledPart) -> None:
        part.file.unlink(missing_ok=True)
        part.sidecar.unlink(missing_ok=True)

    def reject(self, files: list[Path], reason: str) -> Path:
        """Move ``files`` out of the way into ``rejected/`` with a note of why; the destination."""
        destination = self.root / "rejected" / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        destination.mkdir(parents=True)
        for file in files:
            if file.exists():
                shutil.move(str(file), destination / file.name)
        (destination / "reason.txt").write_text(reason + "\n")
        return destination

    def is_empty(self) -> bool:
        return not (self.registrations() or self.parts() or self.commits())
