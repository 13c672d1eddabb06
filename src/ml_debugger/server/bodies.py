"""Request bodies with limits: size (413), stalls and trickles (408), and JSON bodies read before routing.

Every body is read through :func:`body_chunks`, which refuses a body that sends nothing for
``body_timeout`` seconds or, after that long, averages less than ``min_body_rate`` bytes per
second, so a stalled client cannot hold a connection, a file and an upload slot for long.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ml_debugger.server.errors import ApiProblem, error_response

UPLOAD_PATH = re.compile(r"/api/v1/models/[^/]+/versions/[^/]+/parts/")
DISCARD_FACTOR = 4
DISCARD_MIN = 256 * 2**20
"""An oversized body is read and dropped up to ``max(DISCARD_FACTOR * limit, DISCARD_MIN)`` bytes, so the
client sees the 413 before the connection closes (a client still sending into a closed connection sees
only a reset); reading costs the network, not memory, and the stall limits still apply."""
_CLOSE = {"Connection": "close"}


@dataclass(frozen=True)
class BodyLimits:
    """How long a body may stall (seconds) and how slowly it may arrive (bytes per second, 0 for any rate)."""

    timeout: float
    min_rate: float


async def body_chunks(receive: Receive, limits: BodyLimits) -> AsyncIterator[bytes]:
    """The chunks of a request body; ApiProblem 408 when it stalls or trickles, ClientDisconnect when the client leaves."""
    started = time.monotonic()
    received = 0
    while True:
        try:
            message = await asyncio.wait_for(receive(), limits.timeout)
        except asyncio.TimeoutError:
            raise ApiProblem(
                408, "RemoteError", f"the request body sent nothing for {limits.timeout:g} s; send it again",
                headers=_CLOSE,
            ) from None
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        received += len(chunk)
        elapsed = time.monotonic() - started
        if limits.min_rate and elapsed > limits.timeout and received < limits.min_rate * elapsed:
            raise ApiProblem(
                408, "RemoteError",
                f"the request body arrives at {received / elapsed:.0f} bytes/s, below the {limits.min_rate:g} "
                "bytes/s this server needs; send it again",
                headers=_CLOSE,
            )
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def discard(receive: Receive, limits: BodyLimits, up_to: int) -> None:
    """Read and drop at most ``up_to`` bytes of a body that is refused (stalls end it early too)."""
    received = 0
    try:
        async for chunk in body_chunks(receive, limits):
            received += len(chunk)
            if received > up_to:
                return
    except (ApiProblem, ClientDisconnect):
        return


def too_large(what: str, size: str, limit: int, unit: str = "bytes") -> ApiProblem:
    return ApiProblem(413, "RemoteError", f"{what} is {size} {unit}; this server accepts at most {limit} {unit}")


class JsonBodyLimit:
    """ASGI middleware: every request body but a part upload is read here, up to ``max_bytes`` (413 beyond),
    with the stall limits, before the app parses it; uploads stream through (see ``uploads``)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, limits: BodyLimits) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE") \
                or UPLOAD_PATH.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
        except ApiProblem as problem:
            await error_response(problem.status, problem.kind, problem.message, problem.headers)(scope, receive, send)
            return
        except ClientDisconnect:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        declared = dict(scope["headers"]).get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await discard(receive, self.limits, max(DISCARD_FACTOR * self.max_bytes, DISCARD_MIN))
            raise too_large("the JSON body", declared, self.max_bytes)
        chunks: list[bytes] = []
        size = 0
        async for chunk in body_chunks(receive, self.limits):
            size += len(chunk)
            if size > self.max_bytes:
                await discard(receive, self.limits, max(DISCARD_FACTOR * self.max_bytes, DISCARD_MIN))
                raise too_large("the JSON body", f"more than {self.max_bytes}", self.max_bytes)
            chunks.append(chunk)
        return b"".join(chunks)


class UploadSlots:
    """A bound on part uploads in progress; used from the event loop only (no await between check and take)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def take(self) -> None:
        """Take a slot, or raise ApiProblem 503 (with ``Retry-After``) when all are in use."""
        if self.in_use >= self.limit:
            raise ApiProblem(
                503, "ServerUnavailableError",
                f"{self.in_use} part uploads are in progress, the most this server receives at once; retry later",
                headers={"Retry-After": "1", **_CLOSE},
            )
        self.in_use += 1

    def give_back(self) -> None:
        self.in_use -= 1
