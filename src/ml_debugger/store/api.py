"""The HTTP client of an ml-debugger server; httpx errors become ml_debugger exceptions here.

Every server error is JSON ``{"error": {"type": ..., "message": ...}}``; ``type`` names the
ml_debugger exception the server raised, which is raised again on this side.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from ml_debugger.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InvalidNameError,
    MLDebuggerError,
    NoDataError,
    RemoteError,
    ResultExistsError,
    ServerUnavailableError,
    StoreError,
)

API_PREFIX = "/api/v1"
_RAISED_AGAIN: dict[str, type[MLDebuggerError]] = {
    cls.__name__: cls
    for cls in (ConfigurationError, InvalidNameError, NoDataError, ResultExistsError, StoreError, RemoteError)
}
_RETRYABLE_STATUS = {408, 425, 429}
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt ``n`` waits a random time in ``[0, min(cap, base*2**n)]``."""

    base: float = 0.25
    cap: float = 5.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0.0, min(self.cap, self.base * 2 ** min(attempt, 30)))


def error_from_response(response: httpx.Response) -> MLDebuggerError:
    """The exception an error response stands for (5xx and 429 are ServerUnavailableError)."""
    request = response.request
    where = f"{request.method} {request.url.path}"
    try:
        error = response.json()["error"]
        kind, message = str(error["type"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        kind, message = "", response.text[:300] or response.reason_phrase
    text = f"{message} (HTTP {response.status_code} on {where})"
    if response.status_code >= 500 or response.status_code in _RETRYABLE_STATUS:
        return ServerUnavailableError(f"the ml-debugger server failed: {text}")
    if response.status_code in (401, 403):
        return AuthenticationError(f"the ml-debugger server refused the API key (MLD_API_KEY): {text}")
    return exception_named(kind, text)


def exception_named(kind: str, message: str) -> MLDebuggerError:
    """The ml_debugger exception a server reported by name (RemoteError for any other name)."""
    if kind == ServerUnavailableError.__name__:
        return ServerUnavailableError(message)
    return _RAISED_AGAIN.get(kind, RemoteError)(message)


class ApiClient:
    """Authenticated requests to ``<endpoint>/api/v1``; raises ml_debugger exceptions only.

    Args:
        endpoint: the server's base URL (``MLD_API_ENDPOINT``).
        api_key: sent as ``Authorization: Bearer <key>`` (``MLD_API_KEY``).
        timeout: seconds for one request to connect, send or receive.
        transport: an httpx transport to use instead of the network (tests, instrumentation).
    """

    def __init__(
        self, endpoint: str, api_key: str | None, *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigurationError(f"MLD_API_ENDPOINT must be an http:// or https:// URL; got {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.endpoint + API_PREFIX, headers=headers, transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )

    def request(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> httpx.Response:
        """Send one request; a non-2xx answer raises the exception it stands for."""
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ServerUnavailableError(f"{method} {self.endpoint}{API_PREFIX}{path} timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise ServerUnavailableError(f"cannot reach the ml-debugger server at {self.endpoint}: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise RemoteError(f"{method} {self.endpoint}{API_PREFIX}{path} failed: {exc!r}") from exc
        if response.is_success:
            return response
        raise error_from_response(response)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of a successful request."""
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise RemoteError(
                f"{method} {path}: the server answered with invalid JSON: {response.text[:200]!r}"
            ) from exc

    def close(self) -> None:
        self._client.close()


def with_retries(action: Callable[[], T], *, deadline: float, backoff: Backoff) -> T:
    """Run ``action`` until it does not raise ServerUnavailableError or ``deadline`` (monotonic) passes."""
    attempt = 0
    while True:
        try:
            return action()
        except ServerUnavailableError:
            delay = backoff.delay(attempt)
            if time.monotonic() + delay > deadline:
                raise
            attempt += 1
            time.sleep(delay)
