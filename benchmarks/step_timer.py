"""StepTimer: wall and CPU seconds per evaluation step, for the evaluation benchmarks."""

from __future__ import annotations

import functools
import time
from collections import defaultdict


class StepTimer:
    """Wall and CPU seconds per step, from wrappers around the functions a step calls (the
    outermost timed call only: a timed call nested in another is counted there)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.depth = 0

    def wrap(self, label: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if self.depth:
                return fn(*args, **kwargs)
            self.depth += 1
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall[label] += time.perf_counter() - wall
                self.cpu[label] += time.process_time() - cpu
                self.depth -= 1

        return timed

    def reset(self) -> None:
        self.wall.clear()
        self.cpu.clear()
