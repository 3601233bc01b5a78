"""HTTP pieces shared by the remote connectors (``generator.openai``, ``embedder.http``).

One retry policy: a 429, a 5xx or a connection error is retried ``max_retries`` times, waiting
``backoff * 2**attempt`` seconds (or the server's ``Retry-After``, capped at ``max_backoff``);
any other status fails at once. Every error names the URL and the HTTP status. API keys are
:class:`~rag.core.secrets.Secret` references, never values.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

import httpx

from rag.core.errors import ConfigError, RagError
from rag.core.secrets import ENV_REFERENCE, Secret, redact_urls

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def secret_reference(api_key: Secret | str | None, *, field: str = "api_key") -> Secret | None:
    """``api_key`` as a :class:`Secret`; a string must name an environment variable.

    Raises:
        ConfigError: the string looks like a key itself (it would end up serialized in YAML).
    """
    if not isinstance(api_key, str):
        return api_key
    if not _ENV_NAME.fullmatch(api_key) and not ENV_REFERENCE.fullmatch(api_key):
        # Never keep (or later serialize) what looks like the key itself.
        raise ConfigError(
            f"{field} must name an environment variable, e.g. '${{OPENAI_API_KEY}}', "
            "never hold the key itself",
            field=field,
        )
    return Secret.parse(api_key)


def check_http_url(url: str, *, field: str = "base_url") -> str:
    """``url`` without a trailing slash, or ConfigError when it is not http(s)."""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"{field} must start with http:// or https://, got {redact_urls(url)!r}", field=field
        )
    return url.rstrip("/")


def check_retries(max_retries: int) -> None:
    if max_retries < 0 or max_retries > 10:
        raise ConfigError(
            f"max_retries must be between 0 and 10, got {max_retries}", field="max_retries"
        )


def retry_delay(
    attempt: int, response: httpx.Response | None, *, backoff: float, max_backoff: float
) -> float:
    """Seconds to wait before attempt ``attempt + 1``: exponential, or ``Retry-After``."""
    delay = backoff * 2**attempt
    retry_after = response.headers.get("retry-after") if response is not None else None
    if retry_after:
        with contextlib.suppress(ValueError):  # an HTTP date: keep the exponential delay
            delay = max(delay, float(retry_after))
    return min(delay, max_backoff)


def error_detail(response: httpx.Response) -> str:
    """The server's error message (OpenAI ``{"error": {"message"}}`` or TEI ``{"error"}``)."""
    try:
        response.read()
        data = response.json()
        if isinstance(data, dict):
            error = data.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            if message:
                return str(message)[:300]
    except (ValueError, AttributeError, httpx.HTTPError):
        pass
    return repr(response.text[:300]) if response.text else "(empty body)"


def post_with_retries(
    client: httpx.Client,
    url: str,
    body: Any,
    *,
    max_retries: int,
    backoff: float,
    max_backoff: float,
    error: type[RagError],
    stream: bool = False,
    attempts: list[int] | None = None,
) -> httpx.Response:
    """POST ``body`` as JSON with bounded retries; returns an open response with status < 400.

    Args:
        client: The client (its headers carry the key, its timeouts apply per attempt).
        url: The full URL, named in every error.
        body: JSON-serializable request body.
        max_retries: Retries after a 429, 5xx or connection error.
        backoff: First wait in seconds (doubles each retry).
        max_backoff: Longest wait, including a server's ``Retry-After``.
        error: The exception type raised (``GenerationError``, ``EmbeddingError``).
        stream: Leave the body unread (the caller iterates and closes it).
        attempts: When given, the number of attempts made is appended to it.

    Raises:
        error: naming the URL and the last status, after the retries are spent, or at once on
            a status that retrying cannot fix.
    """
    last_error = ""
    shown = redact_urls(url)  # user:password@ in a URL never reaches a message
    for attempt in range(max_retries + 1):
        response: httpx.Response | None = None
        try:
            request = client.build_request("POST", url, json=body)
            response = client.send(request, stream=stream)
        except httpx.TransportError as err:
            last_error = redact_urls(f"cannot reach {shown}: {type(err).__name__}: {err}")
        else:
            if response.status_code < 400:
                if attempts is not None:
                    attempts.append(attempt + 1)
                return response
            detail = error_detail(response)
            response.close()
            last_error = f"{shown} returned HTTP {response.status_code}: {detail}"
            if response.status_code not in RETRY_STATUSES:
                if attempts is not None:
                    attempts.append(attempt + 1)
                raise error(last_error)
        if attempt < max_retries:
            time.sleep(retry_delay(attempt, response, backoff=backoff, max_backoff=max_backoff))
    if attempts is not None:
        attempts.append(max_retries + 1)
    raise error(f"{last_error} (gave up after {max_retries + 1} attempt(s))")
