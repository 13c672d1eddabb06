"""Rate-limited logging: a failure that repeats (a flood of file-descriptor errors, say) is logged a few
times per window with its traceback, then counted, never written thousands of times a second."""

from __future__ import annotations

import logging
import threading
import time

DEFAULT_BURST = 5
DEFAULT_WINDOW = 60.0
SERVER_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


class RepeatFilter(logging.Filter):
    """Lets at most ``burst`` records of one kind through per ``window`` seconds.

    A kind is the logger, level, message template and exception type, so one failure repeating
    with different ids or numbers counts as one. The first record let through after a window in
    which some were held back says how many.
    """

    def __init__(self, burst: int = DEFAULT_BURST, window: float = DEFAULT_WINDOW) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._seen: dict[tuple, list[float | int]] = {}  # kind -> [window start, let through, held back]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        exc_type = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else None
        kind = (record.name, record.levelno, str(record.msg), exc_type)
        now = time.monotonic()
        with self._lock:
            state = self._seen.setdefault(kind, [now, 0, 0])
            if now - state[0] > self.window:
                held = int(state[2])
                state[:] = [now, 0, 0]
                if held:
                    record.msg = f"{record.msg} [{held} similar messages were not logged in the last {self.window:g} s]"
            if state[1] >= self.burst:
                state[2] += 1
                return False
            state[1] += 1
            if len(self._seen) > 10_000:  # many distinct kinds: forget the oldest windows
                for stale in sorted(self._seen, key=lambda k: self._seen[k][0])[:5_000]:
                    del self._seen[stale]
        return True


def rate_limit_server_logs(repeat_filter: RepeatFilter | None = None) -> RepeatFilter:
    """Add one RepeatFilter to every handler of the root and uvicorn loggers, and to the handler of
    last resort (used when none is configured), unless they have one; the filter."""
    repeat_filter = repeat_filter or RepeatFilter()
    handlers = [h for name in SERVER_LOGGERS for h in logging.getLogger(name).handlers]
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(repeat_filter)
    return repeat_filter
