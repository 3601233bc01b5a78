"""Secrets come from environment variables and serialize as references, never as values."""

from __future__ import annotations

import os
import re

from rag.core.errors import MissingEnvVarError

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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
