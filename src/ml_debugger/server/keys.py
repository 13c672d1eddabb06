"""API keys: ``mldbg_<id>_<secret>``, stored as a SHA-256 hash and checked in constant time.

The id (12 hex characters) names the key in listings and revocation; the secret is 32 random
bytes. Only the hash of the whole key is stored, so a leaked catalog leaks no usable key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.store.catalog import Catalog

KEY_PREFIX = "mldbg_"
_KEY_PATTERN = re.compile(r"mldbg_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
_ID_PATTERN = re.compile(r"[0-9a-f]{12}")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """Creates, verifies, lists and revokes the API keys kept in a catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def create(self, name: str = "") -> tuple[str, str]:
        """A new key: ``(key_id, key)``; the key itself is not kept anywhere."""
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        self._catalog.add_key(key_id, name, hash_key(key))
        return key_id, key

    def verify(self, key: str) -> str | None:
        """The id of ``key`` if it is a known, unrevoked key, else ``None``."""
        match = _KEY_PATTERN.fullmatch(key)
        if match is None:
            return None
        stored = self._catalog.active_key_hash(match.group(1))
        if stored is None:
            return None
        return match.group(1) if hmac.compare_digest(stored, hash_key(key)) else None

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; ``False`` if no active key has that id."""
        if _ID_PATTERN.fullmatch(key_id) is None:
            raise ConfigurationError(f"{key_id!r} is not a key id; key ids are 12 hex characters (see `keys list`)")
        return self._catalog.revoke_key(key_id)

    def list(self) -> list[dict[str, Any]]:
        """Every key: id, name, created_at, revoked_at (never the key or its hash)."""
        return self._catalog.keys()
