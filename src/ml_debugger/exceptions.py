"""The exception tree of ml_debugger.

    MLDebuggerError
    ├── ConfigurationError        (bad argument or environment; also a ValueError)
    │   └── InvalidNameError      (a model, version, dataset or result name)
    ├── TraceValidationError      (a traced batch has the wrong shape, range or type; also a ValueError)
    ├── WriterError               (the background writer failed; raised at the next call)
    ├── StoreError                (the store could not be read or written)
    │   ├── NoDataError           (nothing committed for what was asked; also a LookupError)
    │   └── RemoteError           (an ml-debugger server answered with an error)
    │       ├── AuthenticationError     (the server refused the API key: 401/403)
    │       └── ServerUnavailableError  (unreachable, timed out or 5xx; uploads retry these)
    └── ResultExistsError         (a result of that name is already stored)
"""

from __future__ import annotations


class MLDebuggerError(Exception):
    """Base class of every error raised by ml_debugger."""


class ConfigurationError(MLDebuggerError, ValueError):
    """An argument or environment variable has a value that cannot be used."""


class InvalidNameError(ConfigurationError):
    """A model, version, dataset or result name is not a safe, bounded identifier."""


class TraceValidationError(MLDebuggerError, ValueError):
    """A traced batch does not have the shape, range or type that was expected."""


class WriterError(MLDebuggerError, RuntimeError):
    """The background trace writer failed; no further data can be recorded by it."""


class StoreError(MLDebuggerError, RuntimeError):
    """The trace store could not be read or written."""


class NoDataError(StoreError, LookupError):
    """Nothing is committed for the model, version or epoch that was asked for."""


class ResultExistsError(MLDebuggerError, FileExistsError):
    """An evaluation result with that name is already stored for the version."""


class RemoteError(StoreError):
    """An ml-debugger server answered a request with an error."""


class AuthenticationError(RemoteError):
    """The server refused the API key (missing, unknown or revoked); check ``MLD_API_KEY``."""


class ServerUnavailableError(RemoteError):
    """The server could not be reached, timed out or failed (5xx); worth retrying later."""
