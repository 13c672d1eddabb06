"""The task-agnostic tracing engine shared by every tracer and framework callback."""

from ml_debugger.core.hashing import hash_samples
from ml_debugger.core.session import TraceSession

__all__ = ["TraceSession", "hash_samples"]
