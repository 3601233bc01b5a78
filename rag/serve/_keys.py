"""API keys and their scopes, checked in constant time (no third-party import).

Plain keys come from ``RAGLINE_API_KEYS`` (comma-separated) and have full access. Scoped keys
(tenants) come from a keys file (``RAGLINE_API_KEYS_FILE`` or ``rag serve --keys-file``): each
has a name, an enforced metadata filter and its allowed operations (:class:`KeyScope`).
"""

from __future__ import annotations

import hmac
import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# -- scoped keys (tenants) ------------------------------------------------------------------
API_KEYS_FILE_ENV = "RAGLINE_API_KEYS_FILE"
"""Environment variable holding the path of a keys file (see :func:`load_keys_file`)."""

READ = "read"
WRITE = "write"
OPERATIONS = (READ, WRITE)
"""What a key may be allowed to do: ``read`` (search, ask, chat, stats, list, embeddings) and
``write`` (ingest, delete)."""

_KEY_FIELDS = ("name", "key", "filter", "operations")


@dataclass(frozen=True)
class KeyScope:
    """What a key may see and do: a name, an enforced metadata filter and its operations.

    A scope with a ``filter`` (a tenant) reads only the chunks whose metadata holds every
    ``field: value`` of the filter, and every document it ingests is stamped with them. A scope
    without a filter sees the whole store.

    Args:
        name: Names the key in logs and errors (the key itself is never printed).
        filter: ``{"tenant": "acme"}``: metadata fields and the scalar values they must hold.
        operations: A subset of :data:`OPERATIONS`.

    Example:
        >>> scope = KeyScope("acme", filter={"tenant": "acme"}, operations=frozenset({"read"}))
        >>> scope.allows("read"), scope.allows("write")
        (True, False)
    """

    name: str
    filter: Mapping[str, Any] | None = None
    operations: frozenset[str] = frozenset(OPERATIONS)

    def allows(self, operation: str) -> bool:
        """Whether ``operation`` (``"read"`` or ``"write"``) is allowed."""
        return operation in self.operations

    def restrict(self, filters: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """``filters`` narrowed to this scope's chunks (``$and`` with the enforced filter).

        Example:
            >>> KeyScope("acme", filter={"tenant": "acme"}).restrict({"source": "a.md"})
            {'$and': [{'tenant': 'acme'}, {'source': 'a.md'}]}
        """
        if not self.filter:
            return dict(filters) if filters else None
        if not filters:
            return dict(self.filter)
        return {"$and": [dict(self.filter), dict(filters)]}


FULL_ACCESS = KeyScope("full-access")
"""The scope of a plain ``RAGLINE_API_KEYS`` key, and of every request under ``--no-auth``."""


@dataclass(frozen=True)
class ApiKey:
    """An accepted key and its scope; ``repr()`` never shows the key.

    Example:
        >>> ApiKey("acme-key-0123456789abcdef", KeyScope("acme", filter={"tenant": "acme"}))
        ApiKey(name='acme', filter={'tenant': 'acme'}, operations=['read', 'write'])
    """

    key: str
    scope: KeyScope = FULL_ACCESS

    def __repr__(self) -> str:
        scope = self.scope
        operations = sorted(scope.operations)
        return f"ApiKey(name={scope.name!r}, filter={scope.filter!r}, operations={operations})"


class KeyRing:
    """The accepted keys and their scopes, looked up in constant time.

    Args:
        keys: Plain strings (full access, as ``RAGLINE_API_KEYS``) or :class:`ApiKey`; ``None``
            serves without keys (``--no-auth``): every request then has :data:`FULL_ACCESS`.

    Raises:
        ConfigError: a key given twice.

    Example:
        >>> acme = ApiKey("acme-0123456789abcdef", KeyScope("acme"))
        >>> ring = KeyRing(["k-0123456789abcdef", acme])
        >>> ring.scope_of(b"acme-0123456789abcdef").name, ring.scope_of(b"nope")
        ('acme', None)
    """

    def __init__(self, keys: Sequence[str | ApiKey] | None) -> None:
        self.open = keys is None
        entries: list[tuple[bytes, KeyScope]] = []
        seen: set[str] = set()
        for index, item in enumerate(keys or ()):
            api_key = item if isinstance(item, ApiKey) else ApiKey(item, FULL_ACCESS)
            if api_key.key in seen:
                raise ConfigError(
                    f"API key #{index + 1} ({api_key.scope.name}) is given twice; each key must "
                    "have one scope"
                )
            seen.add(api_key.key)
            entries.append((api_key.key.encode(), api_key.scope))
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    def scope_of(self, token: bytes) -> KeyScope | None:
        """The scope of ``token``, or None when it is no key (every key is compared)."""
        if self.open:
            return FULL_ACCESS
        found: KeyScope | None = None
        for key, scope in self._entries:
            if hmac.compare_digest(token, key):
                found = scope
        return found

    def scope_of_header(self, value: bytes | str | None) -> KeyScope | None:
        """The scope of an ``Authorization: Bearer KEY`` value (None: missing or wrong)."""
        if self.open:
            return FULL_ACCESS
        if value is None:
            return None
        raw = value if isinstance(value, bytes) else value.encode()
        scheme, _, token = raw.partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        return self.scope_of(token.strip())


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, bool, int)) or (
        isinstance(value, float) and math.isfinite(value)
    )


def parse_key_entries(data: Any, *, where: str, lines: Any = None) -> list[ApiKey]:
    """Scoped keys from parsed data: ``{"keys": [{"name", "key", "filter", "operations"}]}``.

    Args:
        data: The parsed file (or environment value).
        where: Names the source in errors (a file path).
        lines: ``LocatedYaml.line_of`` of the file, to name lines in errors.

    Raises:
        ConfigError: a missing or unknown field, a short or repeated key, a filter that is not
            ``field: scalar`` pairs, an unknown operation. The message never shows a key.
    """

    def fail(message: str, path: tuple[Any, ...]) -> ConfigError:
        line = lines(path) if lines else None
        return ConfigError(message, file=where, line=line, field=".".join(map(str, path)) or None)

    if not isinstance(data, dict) or set(data) != {"keys"} or not isinstance(data["keys"], list):
        raise fail(
            "a keys file is a mapping with one field, 'keys', holding a list of "
            "{name, key, filter, operations} entries",
            (),
        )
    result: list[ApiKey] = []
    names: set[str] = set()
    for index, entry in enumerate(data["keys"]):
        path: tuple[Any, ...] = ("keys", index)
        if not isinstance(entry, dict):
            raise fail("each entry is a mapping with name, key, filter and operations", path)
        unknown = sorted(set(entry) - set(_KEY_FIELDS), key=str)
        if unknown:
            raise fail(
                f"unknown field '{unknown[0]}'; the fields are {', '.join(_KEY_FIELDS)}", path
            )
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise fail(
                "'name' must be a non-empty text (it names the key in logs)", (*path, "name")
            )
        if name in names:
            raise fail(f"the name '{name}' is used twice; give each key its own", (*path, "name"))
        names.add(name)
        key = entry.get("key")
        if not isinstance(key, str) or len(key.strip()) < MIN_KEY_LENGTH:
            raise fail(
                f"key '{name}': 'key' must be a text of at least {MIN_KEY_LENGTH} characters "
                "(python -c 'import secrets; print(secrets.token_urlsafe())'), or '${VAR}'",
                (*path, "key"),
            )
        scope_filter = entry.get("filter")
        if scope_filter is not None:
            if not isinstance(scope_filter, dict) or not scope_filter:
                raise fail(
                    f"key '{name}': 'filter' must be a non-empty mapping of metadata fields to "
                    "values, e.g. {tenant: acme}",
                    (*path, "filter"),
                )
            for field_name, value in scope_filter.items():
                if not isinstance(field_name, str) or not field_name or field_name.startswith("$"):
                    raise fail(
                        f"key '{name}': filter field {field_name!r} must be a metadata field name "
                        "(operators are not allowed: the filter is also stamped on ingested "
                        "documents)",
                        (*path, "filter"),
                    )
                if field_name == "source":
                    raise fail(
                        f"key '{name}': 'source' cannot scope a key (it is each document's own "
                        "name); use a field such as 'tenant'",
                        (*path, "filter", field_name),
                    )
                if not _scalar(value):
                    raise fail(
                        f"key '{name}': filter value of '{field_name}' must be a text, number or "
                        f"boolean, not {type(value).__name__}",
                        (*path, "filter", field_name),
                    )
        operations = entry.get("operations", list(OPERATIONS))
        if (
            not isinstance(operations, list)
            or not operations
            or any(op not in OPERATIONS for op in operations)
        ):
            raise fail(
                f"key '{name}': 'operations' must be a non-empty list of {', '.join(OPERATIONS)}",
                (*path, "operations"),
            )
        scope = KeyScope(
            name=name,
            filter=dict(scope_filter) if scope_filter else None,
            operations=frozenset(operations),
        )
        result.append(ApiKey(key.strip(), scope))
    return result


def load_keys_file(path: str | Path) -> list[ApiKey]:
    """Scoped keys from a YAML or JSON file; ``${VAR}`` in a value is read from the environment.

    The file::

        keys:
          - name: acme
            key: ${ACME_KEY}
            filter: {tenant: acme}
            operations: [read, write]
          - name: globex-reader
            key: ${GLOBEX_READ_KEY}
            filter: {tenant: globex}
            operations: [read]

    Raises:
        ConfigError: the file cannot be read, is not valid YAML/JSON, or an entry is wrong
            (the message names the file, line and field, never the key).
    """
    from rag.core.yaml_io import expand_env_refs, read_yaml

    located = read_yaml(path)
    expand_env_refs(located)
    return parse_key_entries(located.data, where=str(path), lines=located.line_of)


def keys_from_env(keys_file: str | Path | None = None) -> list[str | ApiKey]:
    """Every accepted key: ``RAGLINE_API_KEYS`` (full access) then the keys file's scoped keys.

    Args:
        keys_file: A keys file (``rag serve --keys-file``); default ``RAGLINE_API_KEYS_FILE``.
    """
    keys: list[str | ApiKey] = list(api_keys_from_env())
    path = keys_file or os.environ.get(API_KEYS_FILE_ENV) or None
    if path:
        keys.extend(load_keys_file(path))
    return keys
