"""Secrets come from environment variables and serialize as references, never as values.

- :class:`Secret`: a parameter typed as a secret keeps the reference and reads the variable
  when used.
- :class:`EnvValue`: any other ``${VAR}`` in a pipeline file is expanded to an ``EnvValue``, a
  ``str`` that remembers its reference, so dumping the file writes ``${VAR}`` back.
- :func:`redact_urls`: credentials in URLs (``https://user:pass@host``) are masked in every
  message; :class:`RedactingFilter` does the same for log records.
"""

from __future__ import annotations

import logging
import os
import re

from rag.core.errors import MissingEnvVarError

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# scheme://user:password@ or scheme://token@ (the userinfo part of a URL).
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/@'\"]+)@")
# Parameter names whose values are credentials.
# Whole name parts only: "tokenizer", "max_tokens" and "sort_key" are not credentials.
SECRET_NAMES = re.compile(
    r"(^|[_-])(api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|token|"
    r"access[_-]?token|secret|password|passwd|credentials?|auth|authorization)($|[_-])",
    re.I,
)
# Well-known shapes of keys: OpenAI/Anthropic (sk-), GitHub (ghp_), Slack (xox), AWS (AKIA), JWT.
_KEY_SHAPES = re.compile(
    r"^(sk-[A-Za-z0-9_-]{8,}|gh[pousr]_[A-Za-z0-9]{16,}|xox[abpr]-[A-Za-z0-9-]{8,}|"
    r"AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+|"
    r"Bearer\s+\S{8,})$"
)


def redact_urls(text: str) -> str:
    """Mask the credentials of every URL in ``text`` (user and password become ``***``).

    Example:
        >>> redact_urls("cannot reach http://admin:hunter2@db:8080/v1")
        'cannot reach http://***@db:8080/v1'
    """
    return _URL_CREDENTIALS.sub(lambda m: m.group("scheme") + "***@", text)


def looks_like_secret(name: str, value: object) -> bool:
    """Whether a literal ``value`` under parameter ``name`` looks like a credential.

    Example:
        >>> looks_like_secret("api_key", "sk-abcdefghijklmnop")
        True
        >>> looks_like_secret("model", "all-MiniLM-L6-v2")
        False
    """
    if not isinstance(value, str) or not value.strip() or ENV_REFERENCE.search(value):
        return False
    if _KEY_SHAPES.match(value.strip()):
        return True
    return bool(SECRET_NAMES.search(str(name))) and not re.fullmatch(
        r"[A-Za-z_][A-Za-z0-9_]*", value
    )


class RedactingFilter(logging.Filter):
    """A logging filter that masks URL credentials in every record it passes.

    Example:
        >>> import logging
        >>> logging.getLogger("rag").addFilter(RedactingFilter())
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_urls(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class EnvValue(str):
    """A string expanded from ``${VAR}``: reads as the value, serializes as the reference.

    Example:
        >>> value = EnvValue("s3cret", reference="${DEMO_TOKEN}")
        >>> value == "s3cret", value.reference
        (True, '${DEMO_TOKEN}')
    """

    reference: str

    def __new__(cls, value: str, *, reference: str) -> EnvValue:
        obj = super().__new__(cls, value)
        obj.reference = reference
        return obj

    def __reduce__(self) -> tuple[object, ...]:  # pickles (Ray) keep the reference
        return (_env_value, (str(self), self.reference))


def _env_value(value: str, reference: str) -> EnvValue:
    return EnvValue(value, reference=reference)


class Secret:
    """A value read from an environment variable when it is used.

    ``str()``/``repr()`` never show the value, and ``to_dict`` serializes the reference.

    Example:
        >>> import os
        >>> os.environ["DEMO_TOKEN"] = "s3cret"
        >>> token = Secret.from_env("DEMO_TOKEN")
        >>> token.resolve()
        's3cret'
        >>> str(token)
        '${DEMO_TOKEN}'
    """

    def __init__(self, env_var: str) -> None:
        self.env_var = env_var

    @classmethod
    def from_env(cls, env_var: str) -> Secret:
        return cls(env_var)

    @classmethod
    def parse(cls, reference: str) -> Secret:
        """Build from ``"${VAR}"`` (or a bare ``"VAR"``)."""
        match = ENV_REFERENCE.fullmatch(reference.strip())
        return cls(match.group(1) if match else reference.strip())

    def resolve(self, *, required: bool = True) -> str | None:
        """The variable's current value.

        Raises:
            MissingEnvVarError: when the variable is not set and ``required``.
        """
        value = os.environ.get(self.env_var)
        if value is None and required:
            raise MissingEnvVarError(
                f"environment variable {self.env_var} is not set; export it before running"
            )
        return value

    def __str__(self) -> str:
        return "${" + self.env_var + "}"

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.env_var == self.env_var

    def __hash__(self) -> int:
        return hash(("Secret", self.env_var))


def expand_env(text: str) -> str:
    """Replace every ``${VAR}`` / ``${VAR:-default}`` in ``text`` with its value.

    Raises:
        MissingEnvVarError: naming the first variable that is not set and has no default.
    """

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is None:
            if default is not None:
                return default
            raise MissingEnvVarError(
                f"environment variable {name} is not set (referenced as ${{{name}}}); "
                f"export it or write ${{{name}:-default}}"
            )
        return value

    return ENV_REFERENCE.sub(substitute, text)
