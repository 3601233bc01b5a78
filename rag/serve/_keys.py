"""API keys: read from ``RAGLINE_API_KEYS`` and checked in constant time (no third-party import)."""

from __future__ import annotations

import hmac
import os
from collections.abc import Collection

from rag.core.errors import ConfigError

API_KEYS_ENV = "RAGLINE_API_KEYS"
"""Environment variable holding the accepted API keys, comma-separated."""

MIN_KEY_LENGTH = 16
"""Shorter keys are refused: they are too easy to guess."""


def parse_api_keys(text: str | None) -> list[str]:
    """Keys from a comma-separated string (``RAGLINE_API_KEYS``); blanks are ignored.

    Raises:
        ConfigError: a key shorter than :data:`MIN_KEY_LENGTH` characters.

    Example:
        >>> parse_api_keys("k-0123456789abcdef, k-fedcba9876543210")
        ['k-0123456789abcdef', 'k-fedcba9876543210']
    """
    keys = [key.strip() for key in (text or "").split(",") if key.strip()]
    for index, key in enumerate(keys):
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"{API_KEYS_ENV}: key #{index + 1} has {len(key)} characters; use at least "
                f"{MIN_KEY_LENGTH} (python -c 'import secrets; print(secrets.token_urlsafe())')"
            )
    return keys


def api_keys_from_env() -> list[str]:
    """The keys in ``RAGLINE_API_KEYS`` (empty when unset)."""
    return parse_api_keys(os.environ.get(API_KEYS_ENV))


def key_is_valid(given: bytes, keys: Collection[bytes]) -> bool:
    """Constant-time check of ``given`` against every key (no early exit on a match).

    Example:
        >>> key_is_valid(b"k-0123456789abcdef", [b"other-key-000000000", b"k-0123456789abcdef"])
        True
    """
    valid = False
    for key in keys:
        valid |= hmac.compare_digest(given, key)
    return valid
