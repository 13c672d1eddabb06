"""Fixtures of the server tests: real server processes on 127.0.0.1."""

from tests.server.fixtures import api_key, live_server, make_server  # noqa: F401 - fixtures
