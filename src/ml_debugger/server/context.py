"""What every route of one server process shares, and the API-key check."""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request

from ml_debugger.exceptions import AuthenticationError
from ml_debugger.server.bodies import BodyLimits, UploadSlots
from ml_debugger.server.config import ServerConfig
from ml_debugger.server.jobs import JobRunner
from ml_debugger.server.keys import KeyRing
from ml_debugger.store.local import LocalStore


@dataclass(frozen=True)
class ServerContext:
    """The store, keys and jobs of one server, and what bounds its requests.

    Attributes:
        uploads: where bodies are received (on the store's filesystem, so parts are linked into place).
        upload_slots: part uploads in progress (``config.max_uploads``).
        checks: parts decoded and checked at once (``config.max_checks``).
        part_lock: held while a commit or an upload looks at a stored part and while the janitor removes
            an uncommitted one, so a part is never removed under a commit.
    """

    config: ServerConfig
    store: LocalStore
    keys: KeyRing
    jobs: JobRunner
    uploads: Path
    upload_slots: UploadSlots
    checks: threading.BoundedSemaphore
    part_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def body_limits(self) -> BodyLimits:
        return BodyLimits(timeout=self.config.body_timeout, min_rate=self.config.min_body_rate)


def context(request: Request) -> ServerContext:
    """The running app's context (a FastAPI dependency)."""
    return request.app.state.context


LOCAL_KEY_ID = "local"
"""The key id of every request a ``local_only`` server lets in."""


def is_loopback(request: Request) -> bool:
    """The request comes from this machine (``127.0.0.0/8`` or ``::1``)."""
    try:
        address = ipaddress.ip_address(request.client.host if request.client else "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def require_key(request: Request) -> str:
    """The id of the request's valid API key (a FastAPI dependency); 401 without one.

    On a ``local_only`` server every loopback request passes as ``LOCAL_KEY_ID`` and any other is refused.
    """
    if context(request).config.local_only:
        if not is_loopback(request):
            raise AuthenticationError("this server only answers requests from 127.0.0.1 (mldebugger ui)")
        return LOCAL_KEY_ID
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("missing API key: send the header 'Authorization: Bearer mldbg_...'")
    key_id = context(request).keys.verify(token.strip())
    if key_id is None:
        raise AuthenticationError("invalid or revoked API key")
    return key_id
