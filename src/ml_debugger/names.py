"""Validation of user-given names that become path components and catalog keys."""

from __future__ import annotations

import re

from ml_debugger.exceptions import InvalidNameError

MAX_NAME_LENGTH = 128
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def validate_name(value: object, field: str) -> str:
    """Return ``value`` if it is a safe name, else raise :class:`InvalidNameError` naming ``field``.

    A safe name is 1-128 characters of letters, digits, ``.``, ``_``, ``+`` and ``-``, starting
    with a letter or digit: no path separators, no ``..``, no whitespace.
    """
    if not isinstance(value, str):
        raise InvalidNameError(f"{field} must be a string; got {type(value).__name__} {value!r}")
    if not value:
        raise InvalidNameError(f"{field} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"{field} is {len(value)} characters long; at most {MAX_NAME_LENGTH} are allowed"
        )
    if not _NAME_PATTERN.fullmatch(value) or ".." in value:
        raise InvalidNameError(
            f"{field} {value!r} is not a valid name: use letters, digits, '.', '_', '+' and '-', "
            "starting with a letter or digit (no path separators, no '..', no spaces)"
        )
    return value
