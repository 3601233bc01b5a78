"""Which component of a pipeline file plays which role: the store, the retriever, the chain, ...

``rag search``, ``rag ask``, ``rag stats`` and ``rag serve`` all take the same pipeline file and
must agree on which of its components is *the* store, *the* retriever, *the* embedder or *the*
chain. :func:`find_role` is the one place that decides, by what a component can do (its
:class:`Role`'s Protocol), never by its name or type string:

1. a pipeline named by the caller (``--pipeline``) must exist and is the only place looked at;
2. otherwise the preferred pipelines (e.g. ``search`` for the retriever), in order, then the
   whole file;
3. in each place, the components listed there that play the role win; when none does, the
   components they hold (a writer's store, a chain's retriever) are looked at; a candidate held
   by another candidate (a hybrid retriever's dense retriever) does not count;
4. more than one candidate left is an error that names them and their pipelines.

Example:
    >>> from rag.core.pipeline_file import PipelineFile
    >>> from rag.core.roles import Role, find_role
    >>> app = PipelineFile.load("examples/hybrid.yaml")
    >>> find_role(app, Role.RETRIEVER, prefer=["search"]).name
    'hybrid'
    >>> find_role(app, Role.RETRIEVER, pipeline="bm25").name
    'bm25'
    >>> find_role(app, Role.STORE, prefer=["ingest"]).name
    'store'
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rag.core.component import Component
from rag.core.documents import Chunk, Document
from rag.core.errors import ConfigError, did_you_mean
from rag.core.graph import Pipeline
from rag.core.protocols import Embedder, Retriever, VectorStore

if TYPE_CHECKING:
    from rag.core.pipeline_file import PipelineFile


@runtime_checkable
class Chain(Protocol):
    """Answers a question from retrieved contexts (``chain.rag``)."""

    def ask(
        self, question: str, *, filters: dict[str, Any] | None = None, k: int | None = None
    ) -> Any: ...

    def stream(
        self, question: str, *, filters: dict[str, Any] | None = None, k: int | None = None
    ) -> Iterator[Any]: ...


@runtime_checkable
class Splitter(Protocol):
    """Cuts a document into chunks (``splitter.*``)."""

    def split_document(self, document: Document) -> list[Chunk]: ...


@runtime_checkable
class Loader(Protocol):
    """Reads the documents of one source (``loader.*``); row problems come back as errors."""

    def load(self, source: str) -> Iterator[Any]: ...


class Role(enum.Enum):
    """A part a component plays in an application, and the Protocol that proves it."""

    STORE = ("store", VectorStore, "store.* (a vector store)")
    RETRIEVER = ("retriever", Retriever, "retriever.* (anything with retrieve(query, k, filters))")
    EMBEDDER = ("embedder", Embedder, "embedder.*")
    CHAIN = ("chain", Chain, "chain.rag")
    SPLITTER = ("splitter", Splitter, "splitter.*")
    LOADER = ("loader", Loader, "loader.*")

    def __init__(self, label: str, protocol: type, kinds: str) -> None:
        self.label = label
        self.protocol = protocol
        self.kinds = kinds
        """The component types that play it, as error messages name them."""

    def played_by(self, component: object) -> bool:
        """Whether ``component`` has every member of this role's Protocol.

        The members are looked up statically: ``isinstance`` against a runtime-checkable
        Protocol reads properties on Python 3.11, and reading an embedder's ``dimension`` loads
        its model (or calls its service).

        Example:
            >>> Role.CHAIN.played_by(object())
            False
        """
        return all(
            inspect.getattr_static(component, member, _MISSING) is not _MISSING  # reads no property
            for member in _members(self.protocol)
        )


_MISSING = object()


def _members(protocol: type) -> list[str]:
    """The names a Protocol declares (methods, properties and annotated attributes)."""
    names = [n for n in vars(protocol) if not n.startswith("_")]
    names += [n for n in vars(protocol).get("__annotations__", {}) if n not in names]
    return names


@dataclass(frozen=True)
class RoleMatch:
    """The component found for a role, its name, and the pipeline it was found in.

    ``pipeline`` is ``None`` when it was found in the file as a whole; ``name`` is the path of
    parameters that leads to a held component (``writer.store``) when no name was given to it.
    """

    name: str
    component: Component
    pipeline: str | None


def find_role(
    source: PipelineFile | Pipeline,
    role: Role,
    *,
    pipeline: str | None = None,
    prefer: Sequence[str] = (),
    whole_file: bool = True,
    required: bool = True,
) -> RoleMatch | None:
    """The component of ``source`` that plays ``role`` (see the module docstring for the rules).

    Args:
        source: A pipeline file, or one pipeline (then only it is looked at).
        role: What to find.
        pipeline: A pipeline the user named: it must exist, and nothing else is looked at.
        prefer: Pipelines to look in first, in order, when ``pipeline`` is ``None``; those the
            file lacks are passed over.
        whole_file: Fall back to every component of the file when the preferred pipelines
            have none.
        required: Raise when nothing plays the role (else return ``None``).

    Returns:
        The match, or ``None`` when nothing plays the role and ``required`` is false.

    Raises:
        ConfigError: ``pipeline`` is not in the file; several components play the role in the
            same place (names them and their pipelines); nothing does and ``required`` is true.
    """
    if isinstance(source, Pipeline):
        pipelines: Mapping[str, Pipeline] = {source.name: source}
        pipeline = pipeline or source.name
        file_components: Mapping[str, Component] = source.components
        file_name = None
    else:
        pipelines, file_components, file_name = source.pipelines, source.components, source.source
    if pipeline is not None:
        if pipeline not in pipelines:
            raise ConfigError(
                f"no pipeline named '{pipeline}'.{did_you_mean(pipeline, pipelines)} "
                f"Pipelines: {', '.join(pipelines) or '(none)'}",
                file=file_name,
                field="pipelines",
            )
        places: list[tuple[str | None, Mapping[str, Component]]] = [
            (pipeline, pipelines[pipeline].components)
        ]
    else:
        places = [(p, pipelines[p].components) for p in prefer if p in pipelines]
        if whole_file:
            places.append((None, file_components))
    known = {id(c): n for n, c in file_components.items()}
    for place, components in places:
        found = _candidates(components, role, known)
        if len(found) == 1:
            name, component = found[0]
            return RoleMatch(name=name, component=component, pipeline=place)
        if found:
            where = f"pipeline '{place}'" if place else "the file"
            listed = ", ".join(_described(name, c, pipelines) for name, c in found)
            raise ConfigError(
                f"{where} has {len(found)} components that can be the {role.label}: {listed}; "
                f"keep one, or name the pipeline that holds the one to use"
                + ("" if place else f" (pipelines: {', '.join(pipelines) or 'none'})"),
                file=file_name,
                field=f"pipelines.{place}" if place else "components",
            )
    if not required:
        return None
    if pipeline is not None:
        elsewhere = _candidates(file_components, role, known)
        hint = (
            f"; the file's {role.kinds}: "
            + ", ".join(_described(name, c, pipelines) for name, c in elsewhere)
            if elsewhere
            else ""
        )
        raise ConfigError(
            f"pipeline '{pipeline}' has no component of type {role.kinds}{hint}",
            file=file_name,
            field=f"pipelines.{pipeline}",
        )
    looked = [p for p in prefer if p in pipelines]
    raise ConfigError(
        f"no component of type {role.kinds} in "
        + (f"pipeline(s) {', '.join(looked)} or " if looked else "")
        + f"the file (pipelines: {', '.join(pipelines) or 'none'}); add one"
        + (f", e.g. in a pipeline '{prefer[0]}'" if prefer else ""),
        file=file_name,
        field="pipelines",
    )


def _candidates(
    components: Mapping[str, Component], role: Role, known: Mapping[int, str]
) -> list[tuple[str, Component]]:
    """Components of one place playing ``role``: listed ones first, else the ones they hold
    (named as the file names them, else by their parameter path); minus any held by another
    candidate."""
    listed = [(n, c) for n, c in components.items() if role.played_by(c)]
    found = listed or [
        (known.get(id(held), path), held)
        for path, held in _held(components.items())
        if role.played_by(held)
    ]
    unique: dict[int, tuple[str, Component]] = {}
    for name, component in found:
        unique.setdefault(id(component), (name, component))
    inner = {id(held) for _, c in unique.values() for _, held in _held([("", c)])}
    return [(n, c) for key, (n, c) in unique.items() if key not in inner]


def _held(roots: Iterable[tuple[str, Component]]) -> Iterator[tuple[str, Component]]:
    """``(parameter path, component)`` of every component held (at any depth) by ``roots``."""
    seen: set[int] = set()
    queue = list(roots)
    while queue:
        path, component = queue.pop(0)
        for param, value in component.init_parameters.items():
            children = value if isinstance(value, (list, tuple)) else [value]
            for index, child in enumerate(children):
                if isinstance(child, Component) and id(child) not in seen:
                    seen.add(id(child))
                    at = f"{param}[{index}]" if isinstance(value, (list, tuple)) else param
                    child_path = f"{path}.{at}" if path else at
                    yield child_path, child
                    queue.append((child_path, child))


def _described(name: str, component: Component, pipelines: Mapping[str, Pipeline]) -> str:
    inside = [
        p for p, pipe in pipelines.items() if any(c is component for c in pipe.components.values())
    ]
    return f"'{name}'" + (f" (in pipeline {', '.join(inside)})" if inside else "")
