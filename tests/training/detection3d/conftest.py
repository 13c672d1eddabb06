"""The 3-D tracer tests run their models on one thread: on a shared two-core machine that is
several times faster than torch's default and leaves the other core to the rest of the suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
