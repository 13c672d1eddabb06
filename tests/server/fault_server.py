"""The server wrapped in a fault-injecting ASGI middleware; used only by the fault tests.

``MLD_TEST_FAULTS`` (JSON) configures it: ``error_before`` / ``error_after`` (shares of PUT and
POST requests answered 503 before the app sees them / after the app handled them), ``delay``
(seconds) with ``delay_before`` / ``delay_after`` (shares of them delayed before the app sees them
/ answered late after the app handled them), ``seed``; ``evaluation_exit`` / ``evaluation_emfile``
(the first N evaluations end the worker thread with SystemExit / fail with "Too many open files").
Run like ``mldebugger server``.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import logging
import os
import random
import sys

import uvicorn

from ml_debugger.cli import build_parser
from ml_debugger.cli.server import server_config
from ml_debugger.server import create_app, jobs

_FAILURE = json.dumps({"error": {"type": "InjectedFault", "message": "injected by the test"}}).encode()


class FaultInjector:
    """Answers a share of write requests with 503 (before or after handling them) or late."""

    def __init__(self, app, *, error_before=0.0, error_after=0.0, delay=0.0, delay_before=0.0, delay_after=0.0,
                 seed=0) -> None:
        self.app = app
        self.error_before, self.error_after = error_before, error_after
        self.delay, self.delay_before, self.delay_after = delay, delay_before, delay_after
        self.random = random.Random(seed)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("PUT", "POST"):
            return await self.app(scope, receive, send)
        if self.random.random() < self.delay_before:
            await asyncio.sleep(self.delay)
        draw = self.random.random()
        if draw < self.error_before:
            while (await receive()).get("more_body", False):
                pass
            return await self._fail(send)
        if draw < self.error_before + self.error_after:
            async def swallow(message) -> None:
                pass

            await self.app(scope, receive, swallow)
            return await self._fail(send)
        if self.random.random() < self.delay_after:
            async def late(message) -> None:
                if message["type"] == "http.response.start":
                    await asyncio.sleep(self.delay)
                await send(message)

            return await self.app(scope, receive, late)
        await self.app(scope, receive, send)

    async def _fail(self, send) -> None:
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": _FAILURE})


def break_evaluations(exits: int, emfiles: int) -> None:
    """Make the first evaluations end the worker thread, then the next ones fail for lack of descriptors."""
    evaluate, calls = jobs.evaluate_version, itertools.count()

    def broken(*args, **kwargs):
        call = next(calls)
        if call < exits:
            raise SystemExit("injected by the test")
        if call < exits + emfiles:
            raise OSError(errno.EMFILE, "Too many open files")
        return evaluate(*args, **kwargs)

    jobs.evaluate_version = broken


def main() -> None:
    args = build_parser().parse_args(["server", *sys.argv[1:]])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    faults = json.loads(os.environ.get("MLD_TEST_FAULTS", "{}"))
    break_evaluations(faults.pop("evaluation_exit", 0), faults.pop("evaluation_emfile", 0))
    app = FaultInjector(create_app(server_config(args)), **faults)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", limit_concurrency=args.max_connections)


if __name__ == "__main__":
    main()
