"""Timing helpers shared by the benchmarks: seconds per evaluation step, seconds inside a hook."""

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


def time_methods(obj: object, names: tuple[str, ...] | list[str]) -> list[float]:
    """Wrap ``obj``'s methods ``names`` (a callback's or hook's); returns the one-item list their
    wall seconds are added to."""
    spent = [0.0]

    def timed(method):
        @functools.wraps(method)
        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started

        return call

    for name in names:
        setattr(obj, name, timed(getattr(obj, name)))
    return spent
