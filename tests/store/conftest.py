"""Fixtures of the remote-store tests: real server processes and a real PostgreSQL (see tests/server)."""

from tests.server.fixtures import api_key, live_server, make_server  # noqa: F401 - fixtures
from tests.server.postgres import database_url, postgres_url  # noqa: F401 - fixtures
