"""Every error the server answers is JSON ``{"error": {"type", "message"}}``, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ml_debugger.exceptions import (
    AuthenticationError,
    ConfigurationError,
    MLDebuggerError,
    NoDataError,
    ResultExistsError,
    TraceValidationError,
)

logger = logging.getLogger(__name__)

_STATUS: list[tuple[type[MLDebuggerError], int]] = [
    (AuthenticationError, 401),
    (NoDataError, 404),
    (ResultExistsError, 409),
    (TraceValidationError, 422),
    (ConfigurationError, 400),
]


class ApiProblem(Exception):
    """An error a route answers with a given status; ``kind`` is the client-side exception's name."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = headers


def error_response(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


def _status_of(exc: MLDebuggerError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


async def _problem(request: Request, exc: ApiProblem) -> JSONResponse:
    return error_response(exc.status, exc.kind, exc.message, exc.headers)


async def _ml_debugger_error(request: Request, exc: MLDebuggerError) -> JSONResponse:
    status = _status_of(exc)
    if status == 500:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return error_response(status, type(exc).__name__, str(exc), headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
    return error_response(exc.status_code, kind, f"{exc.detail} ({request.method} {request.url.path})")


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', 'invalid')}" for error in exc.errors()
    )
    return error_response(422, ConfigurationError.__name__, f"invalid request: {problems}")


async def _disconnected(request: Request, exc: ClientDisconnect) -> JSONResponse:
    logger.info("%s %s: the client left before sending its whole body", request.method, request.url.path)
    return error_response(400, "RemoteError", "the client disconnected before sending its whole body")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=exc)
    return error_response(500, "InternalError", "internal server error; the server's log has the details")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiProblem, _problem)
    app.add_exception_handler(MLDebuggerError, _ml_debugger_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnect, _disconnected)
    app.add_exception_handler(Exception, _unexpected)
