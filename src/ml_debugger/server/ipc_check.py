"""Checking an Arrow IPC part (file or stream) before decoding: its record batches' row counts and compression.

An IPC body is read through a memory map, so an uncompressed body decodes without copying: its size is
bounded by the upload limit. A compressed one (LZ4 or ZSTD buffers) decodes to a size known only once
decoded, so it is refused before any batch is read (send Parquet, or uncompressed IPC). The row counts
and the compression flags come from each message's metadata (a FlatBuffer, read here without a
FlatBuffers library); for the file format, from the messages its footer points to, which are the ones
a reader decodes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from ml_debugger.exceptions import TraceValidationError
from ml_debugger.server.part_check import (
    ExpectedPart,
    PartLimits,
    check_decoded_size,
    check_rows,
    check_schema,
    check_table,
    corrupt,
    dictionary_expansion,
)

_DICTIONARY_BATCH, _RECORD_BATCH = 2, 3  # MessageHeader union members (Message.fbs)
_BLOCK_BYTES = 24  # struct Block { offset: long; metaDataLength: int; bodyLength: long } (File.fbs)


class _Table:
    """One FlatBuffers table in ``data`` at ``position``."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data = data
        self.position = position
        self.vtable = position - struct.unpack_from("<i", data, position)[0]

    def _offset(self, field: int) -> int:
        entry = 4 + 2 * field
        if entry >= struct.unpack_from("<H", self.data, self.vtable)[0]:
            return 0
        return struct.unpack_from("<H", self.data, self.vtable + entry)[0]

    def has(self, field: int) -> bool:
        return self._offset(field) != 0

    def scalar(self, field: int, fmt: str, default: int = 0) -> int:
        offset = self._offset(field)
        return struct.unpack_from(fmt, self.data, self.position + offset)[0] if offset else default

    def reference(self, field: int) -> int | None:
        """The position a table, vector or union field points to."""
        offset = self._offset(field)
        if not offset:
            return None
        at = self.position + offset
        return at + struct.unpack_from("<I", self.data, at)[0]

    def table(self, field: int) -> _Table | None:
        at = self.reference(field)
        return None if at is None else _Table(self.data, at)


def _root(data: bytes) -> _Table:
    return _Table(data, struct.unpack_from("<I", data, 0)[0])


def _batch_facts(message: ipc.Message) -> tuple[int, bool]:
    """``(rows, compressed)`` of a record batch or dictionary batch message (rows 0 for dictionaries)."""
    root = _root(message.metadata.to_pybytes())
    kind = root.scalar(1, "<B")
    header = root.table(2)
    if header is None or kind not in (_DICTIONARY_BATCH, _RECORD_BATCH):
        return 0, False
    batch = header if kind == _RECORD_BATCH else header.table(1)
    if batch is None:
        return 0, False
    rows = batch.scalar(0, "<q") if kind == _RECORD_BATCH else 0
    return rows, batch.has(3)


def _stream_messages(source: pa.NativeFile) -> list[ipc.Message]:
    return list(ipc.MessageReader.open_stream(source))


def _file_messages(source: pa.NativeFile, size: int) -> list[ipc.Message]:
    """The dictionary and record batch messages the footer of an IPC file points to."""
    source.seek(size - 10)
    footer_length = struct.unpack("<i", source.read(4))[0]
    if not 0 < footer_length <= size - 18:
        raise ValueError(f"the IPC footer length {footer_length} does not fit the file")
    source.seek(size - 10 - footer_length)
    footer = _root(source.read(footer_length))
    messages = []
    for field in (2, 3):  # dictionaries, recordBatches
        vector = footer.reference(field)
        if vector is None:
            continue
        count = struct.unpack_from("<I", footer.data, vector)[0]
        for index in range(count):
            offset = struct.unpack_from("<q", footer.data, vector + 4 + index * _BLOCK_BYTES)[0]
            if not 0 <= offset < size:
                raise ValueError(f"an IPC footer block points outside the file ({offset})")
            source.seek(offset)
            messages.append(ipc.read_message(source))
    return messages


def check_ipc(path: Path, expected: ExpectedPart, limits: PartLimits, *, file_format: bool) -> pa.Table:
    """Check an Arrow IPC part (see the module doc) and return its table (memory-mapped)."""
    try:
        with pa.memory_map(str(path)) as source:
            size = source.size()
            messages = _file_messages(source, size) if file_format else _stream_messages(source)
            facts = [_batch_facts(m) for m in messages]
            if any(compressed for _, compressed in facts):
                raise TraceValidationError(
                    "the Arrow IPC body has compressed buffers, whose size is known only once decoded; "
                    "send Parquet, or Arrow IPC without compression"
                )
            source.seek(0)
            reader = ipc.open_file(source) if file_format else ipc.open_stream(source)
            check_schema(reader.schema, expected)
            check_rows(sum(rows for rows, _ in facts), expected, limits)
            table = reader.read_all()
    except (OSError, ValueError, struct.error, pa.ArrowException) as exc:
        if isinstance(exc, TraceValidationError):
            raise
        raise corrupt(exc) from exc
    check_rows(table.num_rows, expected, limits)
    check_decoded_size(
        table.nbytes + dictionary_expansion(chunk for column in table.columns for chunk in column.chunks), limits
    )
    for batch in table.to_batches():
        check_table(pa.Table.from_batches([batch]), expected)
    return table
