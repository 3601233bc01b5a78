"""The one exception tree of ragline.

::

    RagError
    ├── ConfigError              bad configuration (YAML, parameters, references); CLI exit 2
    │   ├── UnknownComponentError    a ``type:`` that no registry entry has
    │   ├── PipelineError            unknown sockets, type mismatches, cycles
    │   └── MissingEnvVarError       a ``${VAR}`` that is not set
    ├── FilterError              a malformed metadata filter (also a ``ValueError``)
    ├── InvalidInputError        data from outside breaks a limit (also a ``ValueError``)
    │   ├── NestingTooDeepError      JSON/YAML nested deeper than allowed
    │   └── NonFiniteNumberError     NaN or ±infinity where JSON numbers are expected
    ├── MissingDependencyError   an optional package is not installed (also an ``ImportError``)
    ├── ModelNotFoundError       a model name that resolves to no file on disk
    ├── LoaderError              one source could not be read (recorded, the run goes on)
    ├── DuplicateIdError         ``policy="fail"`` met an id that is already stored
    ├── StoreUnavailableError    a vector store's server cannot be reached (names URL and setting)
    ├── StoreCorruptError        a store file is missing, corrupt or foreign (names file, repair)
    ├── StoreLockedError         another process writes to the store (names pid, host, since)
    ├── StoreFullError           the disk under a store is full (nothing written is lost)
    ├── GenerationError          a generator failed (remote endpoint down, bad response, ...)
    ├── EmbeddingError           an embedder failed (remote endpoint down, bad response, ...)
    │
    │   defined where they are raised, rooted here all the same:
    ├── rag.core.lines.UndecodableLine       a line not valid in its file's encoding (ValueError;
    │                                        readers turn it into their own error)
    ├── rag.chains.tools.ToolArgumentError   a model's tool call does not fit the tool (ValueError)
    ├── rag.serve._backend.Forbidden         the caller's key may not do this (REST 403)
    ├── rag.serve._backend.PathNotAllowed    a server-side path outside every allowed root (403)
    ├── rag.serve._backend.UploadRejected    no uploaded file could be loaded (422)
    ├── rag.serve._backend.NotConfigured     the pipeline file lacks what an endpoint needs (404)
    ├── rag.serve._grpc.InvalidArgument      a gRPC request field is wrong (INVALID_ARGUMENT)
    ├── rag.serve._guard.BodyTooLarge        a body over the limit (also Starlette's HTTPException)
    └── rag.serve._kserve.BadInferRequest    an inference request the model cannot run (an
                                             InvalidInputError)

    RagWarning (a UserWarning)   something works but probably not as meant
    └── rag.core.pipeline_file.LiteralSecretWarning   a credential written into a pipeline file

``tests/test_exported_members.py`` walks every module of ``rag`` and fails on an exception or
warning class outside this tree.

Every message names the offender (file, line, field or value) and, where one exists, the fix,
and never a credential: ``str()`` of any of these errors masks the user and password of every URL
in it (``https://***@host``), whichever connector wrote the message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RagError(Exception):
    """Base class of every error ragline raises on purpose (URL credentials masked in ``str``)."""

    def __str__(self) -> str:
        from rag.core.secrets import redact_urls  # secrets imports this module

        return redact_urls(super().__str__())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigError(RagError):
    """A configuration is invalid. ``str(err)`` names the file, line and field when known.

    Args:
        message: What is wrong and how to fix it.
        file: The configuration file, when the error comes from one.
        line: 1-based line in ``file``.
        field: Dotted path of the offending field (``components.store.init_parameters.path``).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file:
            where.append(f"{self.file}" + (f":{self.line}" if self.line else ""))
        elif self.line:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field '{self.field}'")
        return (", ".join(where) + ": " if where else "") + self.message

    def located(self, *, file: str | None, line: int | None, field: str | None) -> ConfigError:
        """Return a copy of this error with missing location details filled in."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.file = self.file or file
        clone.line = self.line or line
        clone.field = self.field or field
        Exception.__init__(clone, clone._render())
        return clone


class UnknownComponentError(ConfigError):
    """A component type that is not registered."""


class PipelineError(ConfigError):
    """A pipeline graph is invalid (unknown socket, type mismatch, cycle, ...)."""


class MissingEnvVarError(ConfigError):
    """A ``${VAR}`` reference names an environment variable that is not set."""


class FilterError(RagError, ValueError):
    """A metadata filter does not follow the filter grammar."""


class InvalidInputError(RagError, ValueError):
    """Data from outside (a JSONL row, a request body, metadata, a CLI value) breaks a limit.

    Front doors map it to exit 2, HTTP 422 and gRPC ``INVALID_ARGUMENT``.

    Args:
        message: What is wrong and the fix.
        where: The input (``"rows.jsonl:3"``, ``"--filter"``, ``"request body"``).
        path: Where inside it (``"metadata.score"``), when known.
    """

    def __init__(self, message: str, *, where: str | None = None, path: str | None = None) -> None:
        self.message = message
        self.where = where
        self.path = path
        prefix = ", ".join(p for p in (where, f"at '{path}'" if path else None) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def __reduce__(self) -> tuple[object, ...]:  # crosses processes (Ray) intact
        return (_rebuild_input_error, (type(self), self.message, self.where, self.path))


def _rebuild_input_error(
    cls: type[InvalidInputError], message: str, where: str | None, path: str | None
) -> InvalidInputError:
    return cls(message, where=where, path=path)


class NestingTooDeepError(InvalidInputError):
    """JSON or YAML nested deeper than the limit (see :mod:`rag.core.limits`)."""


class NonFiniteNumberError(InvalidInputError):
    """NaN or infinity where a JSON number is expected (JSON has no such numbers)."""


class MissingDependencyError(RagError, ImportError):
    """An optional dependency is missing; the message says what to install."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed. "
            f"Install it with: pip install 'ragline[{extra}]'"
        )


class ModelNotFoundError(RagError):
    """A model name or path does not resolve to files on disk."""


class LoaderError(RagError):
    """A source could not be loaded. Carries the source so reports can name it."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class DuplicateIdError(RagError):
    """A write with ``policy='fail'`` met chunk ids that are already stored."""

    def __init__(self, ids: Iterable[str]) -> None:
        self.ids = list(ids)
        shown = ", ".join(self.ids[:5]) + (" ..." if len(self.ids) > 5 else "")
        super().__init__(
            f"{len(self.ids)} chunk id(s) already stored: {shown}. "
            "Use policy='upsert' to replace them or policy='skip' to keep the stored ones."
        )


class StoreUnavailableError(RagError):
    """A vector store's server cannot be reached. Names the address, the setting, the fix."""

    def __init__(self, store: str, address: str, setting: str, reason: str) -> None:
        from rag.core.secrets import redact_urls

        self.store = store
        self.address = address = redact_urls(address)
        self.setting = setting
        reason = redact_urls(reason)
        super().__init__(
            f"{store}: cannot reach {address} (setting '{setting}'): {reason}. Start the "
            f"server, or point '{setting}' at a running one"
        )


class StoreCorruptError(RagError):
    """A store's file is missing, corrupt or belongs to something else.

    Args:
        path: The file that is wrong.
        problem: What is wrong with it.
        repair: What to do (rebuild from the other part, delete and re-ingest, ...).
    """

    def __init__(self, path: str, problem: str, repair: str) -> None:
        self.path = path
        self.problem = problem
        self.repair = repair
        super().__init__(f"{path}: {problem}. {repair}")

    def __reduce__(self) -> tuple[object, ...]:  # crosses processes (Ray) intact
        return (type(self), (self.path, self.problem, self.repair))


class StoreLockedError(RagError):
    """Another process holds a store's write lock (the message names its pid, host and start)."""


class StoreFullError(RagError):
    """The disk under a store is full. What was committed before stays; the message says where."""


class GenerationError(RagError):
    """A generator could not produce an answer."""


class EmbeddingError(RagError):
    """An embedder could not produce vectors (a remote service failed or answered wrongly)."""


class RagWarning(UserWarning):
    """Base class of every warning ragline emits (filter them all with ``RagWarning``).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", RagWarning)  # silence ragline's warnings only
    """


def did_you_mean(value: str, options: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest option, or an empty string."""
    close = difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
