"""Fixtures of the server tests: real server processes on 127.0.0.1 and a real PostgreSQL."""

from tests.server.fixtures import api_key, live_server, make_server  # noqa: F401 - fixtures
from tests.server.postgres import database_url, postgres_url  # noqa: F401 - fixtures
