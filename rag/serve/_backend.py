"""What the API does, without HTTP: find the components of a pipeline file and call them.

:class:`Backend` picks the retriever, the RAG chain, the store and the ingestion stages out of a
:class:`~rag.core.pipeline.PipelineFile` with :func:`rag.core.roles.find_role` (by pipeline name
first, then by what the components can do) and serializes model calls behind one lock:
embedding models, tokenizers and llama.cpp contexts are not all safe to call from several
threads at once, and on a CPU one call already uses every core.

Every method that reads or writes chunks takes the caller's :class:`~rag.serve._keys.KeyScope`
and applies it here, once for every front door (REST, OpenAI-compatible chat, gRPC, MCP): the
scope's operations are checked, its filter is added to every search, count and delete, and the
documents it ingests are stamped with the filter's fields (a conflicting value is refused).
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from rag.core.documents import Document, Hit
from rag.core.errors import ConfigError, LoaderError, RagError
from rag.core.filters import matches, parse_filter
from rag.core.limits import check_finite
from rag.core.pipeline import Pipeline, PipelineFile
from rag.core.protocols import Enumerable, Flushable, HasTokenizer
from rag.core.roles import Role, find_role
from rag.core.threads import iterate_in_thread
from rag.pipelines.ingest import (
    IngestReport,
    find_writer,
    ingest_documents,
    run_ingest,
    store_stats,
)
from rag.pipelines.loaders import SUPPORTED_EXTENSIONS, FileLoader, expand_sources
from rag.pipelines.recorded import writer_records
from rag.pipelines.records import writer_lock
from rag.pipelines.writer import StoreWriter
from rag.serve._keys import READ, WRITE, KeyScope

WRITE_LOCK_SECONDS = 10.0
"""How long an ingest or delete waits for another process (``rag ingest``) writing the store."""


class Forbidden(RagError):
    """The caller's key may not do this (a read-only key writing, a tenant reaching out)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


def require(scope: KeyScope, operation: str) -> None:
    """Raise :class:`Forbidden` unless ``scope`` allows ``operation``."""
    if not scope.allows(operation):
        allowed = ", ".join(sorted(scope.operations)) or "nothing"
        raise Forbidden(
            f"the API key '{scope.name}' may not {operation} (it may: {allowed}); use a key "
            f"with '{operation}' in its operations"
        )


def stamp(document: Document, scope: KeyScope, *, field: str) -> Document:
    """``document`` owned by ``scope``: its metadata carries the scope's filter fields and its
    id (from which chunk ids derive) is namespaced, so two tenants' same-named documents never
    share a chunk id.

    Raises:
        Forbidden: the metadata already holds another value for a filter field.
    """
    if not scope.filter:
        return document
    metadata = dict(document.metadata)
    for name, value in scope.filter.items():
        if name in metadata and metadata[name] != value:
            raise Forbidden(
                f"{field}.metadata.{name}: the API key '{scope.name}' writes only documents "
                f"with {name}={value!r}, not {metadata[name]!r}; drop the field (it is set "
                "from the key) or use that tenant's key",
                param=f"{field}.metadata.{name}",
            )
        metadata[name] = value
    metadata.setdefault("source", document.id)
    return Document(id=f"{scope.name}\x1f{document.id}", text=document.text, metadata=metadata)


class PathNotAllowed(RagError):
    """A server-side path resolves outside every allowed root."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(message)


class UploadRejected(RagError):
    """None of the uploaded files could be loaded; ``errors`` names each file and why."""

    def __init__(self, errors: Sequence[dict[str, Any]]) -> None:
        self.errors = list(errors)
        reasons = "; ".join(f"{e['source']}: {e['error']}" for e in self.errors)
        super().__init__(f"no uploaded file could be loaded ({reasons})")


class NotConfigured(RagError):
    """The pipeline file lacks what an endpoint needs (no chain, no ingestion pipeline)."""


class AllowedRoots:
    """Directories under which server-side paths may be ingested.

    Roots are resolved once (symlinks followed); each requested path is resolved the same way
    and must stay inside a root, so neither ``..`` nor a symlink can lead out. A directory's
    files are checked one by one, since a symlink inside an allowed directory may point anywhere.

    Example:
        >>> roots = AllowedRoots(["/srv/docs"])  # doctest: +SKIP
        >>> roots.files(["guide.md"])  # relative to the first root  # doctest: +SKIP
        ['/srv/docs/guide.md']
    """

    def __init__(self, roots: Sequence[str | Path]) -> None:
        resolved = []
        for root in roots:
            path = Path(root).expanduser().resolve()
            if not path.is_dir():
                raise ConfigError(f"allowed root {root} is not a directory", field="allowed_roots")
            resolved.append(path)
        self.roots = resolved

    def _inside(self, path: Path) -> bool:
        return any(path == root or path.is_relative_to(root) for root in self.roots)

    def resolve(self, raw: str, *, param: str) -> Path:
        """The resolved path of ``raw`` if it lies inside a root.

        Raises:
            PathNotAllowed: no roots are configured, or the path leads outside them.
        """
        if not self.roots:
            raise PathNotAllowed(
                param,
                "ingesting server-side paths is disabled; start the server with "
                "--allow-root DIR to allow the files under DIR",
            )
        candidate = Path(raw).expanduser()
        if not candidate.is_absolute():
            candidate = self.roots[0] / candidate
        resolved = candidate.resolve()
        if not self._inside(resolved):
            raise PathNotAllowed(
                param,
                f"{param}: '{raw}' is outside the allowed roots "
                f"({', '.join(str(r) for r in self.roots)})",
            )
        return resolved

    def files(self, paths: Sequence[str]) -> tuple[list[str], list[dict[str, str]]]:
        """Every supported file under ``paths``, each checked against the roots.

        Returns:
            ``(files, errors)`` as :func:`rag.pipelines.loaders.expand_sources` returns them.

        Raises:
            PathNotAllowed: a path, or a file under a directory, resolves outside the roots.
        """
        resolved = [self.resolve(raw, param=f"paths[{i}]") for i, raw in enumerate(paths)]
        files, errors = expand_sources(resolved, extensions=SUPPORTED_EXTENSIONS)
        for file in files:
            if not self._inside(Path(file).resolve()):
                raise PathNotAllowed(
                    "paths", f"'{file}' leads outside the allowed roots (a symbolic link?)"
                )
        return files, errors


class AskSettings(Protocol):
    """What a request to answer sets besides its question: the ``AskRequest`` that REST and
    gRPC ``Ask`` validate, and the OpenAI-compatible chat request, carry these."""

    k: int | None
    filters: dict[str, Any] | None
    answer_style: str | None


def _settings(request: AskSettings, scope: KeyScope) -> dict[str, Any]:
    """The keywords of :meth:`Backend.ask` and :meth:`Backend.stream` from ``request``."""
    return {
        "k": request.k,
        "filters": request.filters,
        "scope": scope,
        "answer_style": request.answer_style,
    }


class Backend:
    """The components an API serves, found in a pipeline file.

    Args:
        app_file: The loaded pipeline file.
        search_pipeline: Pipeline whose retriever answers ``/v1/search``.
        ask_pipeline: Pipeline whose ``chain.rag`` answers ``/v1/ask`` and chat completions.
        ingest_pipeline: Pipeline that ingests ``/v1/documents``.
        allowed_roots: Directories whose files may be ingested by path.

    Raises:
        ConfigError: the file has neither a retriever nor a store, so there is nothing to serve.
    """

    def __init__(
        self,
        app_file: PipelineFile,
        *,
        search_pipeline: str = "search",
        ask_pipeline: str = "ask",
        ingest_pipeline: str = "ingest",
        allowed_roots: Sequence[str | Path] = (),
    ) -> None:
        self.app_file = app_file
        self.lock = threading.Lock()
        self.roots = AllowedRoots(allowed_roots)
        self.role_problems: dict[Role, str] = {}
        """Why a role has no component (several could play it), for the endpoints' messages."""

        def role(role: Role, prefer: Sequence[str], *, whole_file: bool = True) -> Any:
            # One resolver for CLI, chains and serve (rag.core.roles). Several candidates leave
            # the role empty, as before: the server still serves what it can, and the endpoint
            # that needs the role says why.
            try:
                found = find_role(
                    app_file, role, prefer=prefer, whole_file=whole_file, required=False
                )
            except ConfigError as err:
                self.role_problems[role] = err.message
                return None
            return found.component if found else None

        self.chain: Any = role(Role.CHAIN, [ask_pipeline])
        self._styled_chains: dict[str, Any] = {}
        """Copies of :attr:`chain` in another answer style, by style name (built on demand)."""
        self.retriever: Any = role(Role.RETRIEVER, [search_pipeline, ask_pipeline])
        self.ingest: Pipeline | None = app_file.pipelines.get(ingest_pipeline)
        found = find_writer(self.ingest) if self.ingest else None
        self.writer: StoreWriter | None = found[1] if found else None
        self.store: Any = (
            self.writer.store
            if self.writer is not None
            else role(Role.STORE, [search_pipeline, ask_pipeline])
        )
        if self.retriever is None and self.store is None:
            raise ConfigError(
                "the pipeline file has no retriever and no vector store to serve; add a "
                "'search' pipeline with a retriever (e.g. retriever.dense)",
                file=app_file.source,
                field="pipelines",
            )
        self.splitter: Any = role(Role.SPLITTER, [ingest_pipeline], whole_file=False)
        self.embedder: Any = role(Role.EMBEDDER, [ingest_pipeline, search_pipeline, ask_pipeline])
        self.loader: Any = role(Role.LOADER, [ingest_pipeline], whole_file=False)

    # -- lifecycle ------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load every model and open every store now, not on the first request."""
        with self.lock:
            for component in (self.retriever, self.chain, self.store, self.embedder):
                if component is not None:
                    component.warm_up()
            if self.ingest is not None:
                self.ingest.warm_up()

    # -- reading --------------------------------------------------------------------------------
    def search(
        self, query: str, *, k: int, filters: dict[str, Any] | None, scope: KeyScope
    ) -> list[Hit]:
        """The ``k`` chunks nearest to ``query`` among those ``scope`` may see."""
        require(scope, READ)
        if self.retriever is None:
            raise NotConfigured(
                self.role_problems.get(Role.RETRIEVER)
                or "the pipeline file has no retriever; add a 'search' pipeline"
            )
        with self.lock:
            return list(self.retriever.retrieve(query, k=k, filters=scope.restrict(filters)))

    def require_chain(self, answer_style: str | None = None) -> Any:
        """The chain, or a copy of it answering in ``answer_style`` (``rag ask --style``),
        built once per style and kept; the caller holds :attr:`lock`.

        Raises:
            NotConfigured: the pipeline file has no chain.
            ConfigError: an unknown style, or one the chain's generator cannot serve.
        """
        if self.chain is None:
            raise NotConfigured(
                self.role_problems.get(Role.CHAIN)
                or "the pipeline file has no chain.rag; add an 'ask' pipeline with a chain.rag "
                "component (see examples/qa.yaml)"
            )
        name = (answer_style or self.chain.answer_style).removeprefix("style.")
        if name == self.chain.answer_style:
            return self.chain
        if name not in self._styled_chains:
            styled = self.chain.with_style(name)
            styled.warm_up()  # a generator that lacks what the style needs fails here
            self._styled_chains[name] = styled
        return self._styled_chains[name]

    def check_question(self, question: str, answer_style: str | None = None) -> str | None:
        """Why ``question`` cannot be answered (it does not fit the context window), or None."""
        from rag.core.errors import GenerationError

        with self.lock:
            chain = self.require_chain(answer_style)
            try:
                chain.warm_up()
                chain.fit_contexts(question, [])
            except GenerationError as err:
                return str(err)
        return None

    def ask(
        self,
        question: str,
        *,
        k: int | None,
        filters: dict[str, Any] | None,
        scope: KeyScope,
        answer_style: str | None = None,
    ) -> Any:
        """The chain's answer (in ``answer_style``, default the chain's), from the contexts
        ``scope`` may see."""
        require(scope, READ)
        with self.lock:
            chain = self.require_chain(answer_style)
            return chain.ask(question, filters=scope.restrict(filters), k=k)

    def stream(
        self,
        question: str,
        *,
        k: int | None,
        filters: dict[str, Any] | None,
        scope: KeyScope,
        answer_style: str | None = None,
    ) -> Iterator:
        """Text pieces then the Answer; the caller holds :attr:`lock` while iterating."""
        require(scope, READ)
        chain = self.require_chain(answer_style)
        return chain.stream(question, filters=scope.restrict(filters), k=k)

    def ask_request(self, question: str, request: AskSettings, scope: KeyScope) -> Any:
        """:meth:`ask` with the ``k``, ``filters`` and ``answer_style`` of ``request`` (a REST,
        chat or gRPC request body)."""
        return self.ask(question, **_settings(request, scope))

    def stream_request(
        self, question: str, request: AskSettings, scope: KeyScope
    ) -> AsyncIterator[Any]:
        """:meth:`stream` with the settings of ``request``, made and consumed in a worker thread
        that holds :attr:`lock` (:func:`rag.core.threads.iterate_in_thread`): what every
        streaming front door (REST, OpenAI-compatible chat, gRPC) sends."""
        options = _settings(request, scope)
        return iterate_in_thread(lambda: self.stream(question, **options), lock=self.lock)

    def stats(self, *, scope: KeyScope) -> dict[str, Any]:
        """Chunks, sources, store type and dimension, counting only what ``scope`` may see."""
        require(scope, READ)
        if self.store is None:
            raise NotConfigured("the pipeline file has no vector store")
        with self.lock:
            return store_stats(self.store, filters=scope.restrict(None) if scope.filter else None)

    def embed(self, texts: Sequence[str]) -> tuple[Any, int]:
        """``(vectors, tokens)``: the pipeline's embedder run on ``texts`` as on documents
        (its ``document_prefix`` applies), and the tokens its tokenizer counts (0 when the
        embedder has no local tokenizer)."""
        if self.embedder is None:
            raise NotConfigured(
                "the pipeline file has no embedder; add an 'ingest' pipeline or a retriever "
                "with an embedder"
            )
        with self.lock:
            self.embedder.warm_up()
            vectors = self.embedder.embed_documents(list(texts))
            # Only a local embedder has a tokenizer; a remote one reports 0 tokens. Checked after
            # warm_up(): isinstance reads the properties on Python 3.11.
            tokens = 0
            if isinstance(self.embedder, HasTokenizer):
                limit = int(self.embedder.max_seq_length) or None
                ids = self.embedder.tokenizer(
                    list(texts), truncation=limit is not None, max_length=limit
                )
                tokens = sum(len(row) for row in ids["input_ids"])
        return vectors, tokens

    # -- writing --------------------------------------------------------------------------------
    def _require_ingest(self) -> None:
        if self.store is None or self.embedder is None:
            raise NotConfigured(
                "the pipeline file has no ingestion pipeline; add an 'ingest' pipeline "
                "(loader, splitter, embedder, writer) as in examples/ingest.yaml"
            )

    def ingest_documents(
        self, documents: Sequence[Document], *, replace: bool, scope: KeyScope
    ) -> IngestReport:
        """Split, embed and store ``documents``; with ``replace`` a source's older chunks go.

        The ingest itself is :func:`rag.pipelines.ingest.ingest_documents`, the one ingest
        path. The whole call holds the model lock, so a search sees a source's old chunks or
        its new ones, never a mix. A scoped key's documents are stamped (:func:`stamp`) and
        replace only that key's chunks of a source.

        Raises:
            Forbidden: ``scope`` may not write, or a document claims another tenant.
            NonFiniteNumberError: metadata holds NaN or an infinity.
        """
        require(scope, WRITE)
        self._require_ingest()
        documents = [
            stamp(document, scope, field=f"documents[{index}]")
            for index, document in enumerate(documents)
        ]
        for index, document in enumerate(documents):
            check_finite(document.metadata, where=f"documents[{index}].metadata")
        with self.lock:
            return ingest_documents(
                documents,
                embedder=self.embedder,
                writer=self.writer,
                store=self.store,
                splitter=self.splitter,
                replace=replace,
                replace_filter=lambda source: scope.restrict({"source": source}),
                lock_timeout=WRITE_LOCK_SECONDS,
            )

    def ingest_uploads(
        self, files: Sequence[tuple[str, bytes]], *, replace: bool, scope: KeyScope
    ) -> IngestReport:
        """Load uploaded ``(filename, data)`` pairs with the pipeline's loader, then store them.

        The source of each document is the uploaded file name. A file that cannot be loaded
        (not UTF-8, a JSONL row nested too deep, ...) is an entry in the report's ``errors``.
        """
        require(scope, WRITE)
        self._require_ingest()
        started = time.perf_counter()
        loader = self.loader or FileLoader()
        documents: list[Document] = []
        errors: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory(prefix="ragline-upload-") as folder:
            for index, (name, data) in enumerate(files):
                target = Path(folder) / f"{index}{Path(name).suffix.lower()}"
                target.write_bytes(data)
                temp = target.as_posix()
                try:
                    for item in loader.load(temp):
                        if isinstance(item, LoaderError):
                            errors.append({"source": name, "error": item.reason})
                            continue
                        item.id = item.id.replace(temp, name, 1)
                        item.metadata["source"] = name
                        documents.append(item)
                except LoaderError as err:
                    errors.append({"source": name, "error": err.reason})
                except (RecursionError, ValueError) as err:  # a loader that let one escape
                    errors.append({"source": name, "error": f"cannot load the file: {err}"})
        if not documents and errors:
            raise UploadRejected(errors)
        report = (
            self.ingest_documents(documents, replace=replace, scope=scope)
            if documents
            else IngestReport()
        )
        report.sources = len(files)
        report.errors = errors + report.errors
        report.seconds = time.perf_counter() - started
        return report

    def ingest_paths(self, paths: Sequence[str], *, scope: KeyScope) -> IngestReport:
        """Ingest server-side files (incrementally) after checking them against the roots.

        Raises:
            Forbidden: ``scope`` may not write, or has a filter (server-side files belong to
                the whole store, not to one tenant).
        """
        require(scope, WRITE)
        if scope.filter:
            raise Forbidden(
                f"the API key '{scope.name}' is scoped to {dict(scope.filter)}; server-side "
                "paths are ingested for the whole store, so only a full-access key may; upload "
                "the files (multipart 'files') or send them inline instead",
                param="paths",
            )
        if self.ingest is None:
            raise NotConfigured(
                "the pipeline file has no 'ingest' pipeline to ingest files with; add one as in "
                "examples/ingest.yaml"
            )
        files, errors = self.roots.files(paths)
        with self.lock:
            report = run_ingest(self.ingest, files, mode="incremental", progress=False)
        report.errors = errors + report.errors
        return report

    def delete(
        self, *, ids: Sequence[str] | None, filters: dict[str, Any] | None, scope: KeyScope
    ) -> int:
        """Delete chunks by id or filter; the ingestion records of their sources are dropped,
        so the next ``rag ingest`` of those files writes them again rather than trusting a
        record of chunks that are gone. A scoped key deletes only its own chunks: other ids
        are not found, as if they did not exist."""
        require(scope, WRITE)
        if self.store is None:
            raise NotConfigured("the pipeline file has no vector store")
        with self.lock, self._store_lock():
            self.store.warm_up()
            if ids and scope.filter:
                node = parse_filter(scope.restrict(None))
                ids = [c.id for c in self.store.get(list(ids)) if matches(node, c.metadata)]
                if not ids:
                    return 0
            filters = scope.restrict(filters) if filters else None
            sources = self._sources_of(ids=ids, filters=filters)
            deleted = int(self.store.delete(ids=list(ids) if ids else None, filters=filters))
            if deleted:
                self._forget(sources)
                self._flush()
        return deleted

    def _sources_of(self, *, ids: Sequence[str] | None, filters: dict[str, Any] | None) -> set:
        if ids:
            return {chunk.source for chunk in self.store.get(list(ids))}
        if not isinstance(self.store, Enumerable):  # sources unknown: a source filter names one
            source = (filters or {}).get("source")
            return {source} if isinstance(source, str) else set()
        node = parse_filter(filters)
        return {c.source for c in self.store.iter_chunks() if matches(node, c.metadata)}

    def _store_lock(self) -> Any:
        """The store's one-writer lock (the one ``rag ingest`` takes), so that the server and a
        ``rag ingest`` process never write the same store at once; after
        :data:`WRITE_LOCK_SECONDS` a :class:`~rag.core.errors.StoreLockedError` names the holder."""
        records = writer_records(self.writer)  # none: a store without records has no lock
        return writer_lock(records.path if records else None, timeout=WRITE_LOCK_SECONDS)

    def _forget(self, sources: Sequence[str] | set[str]) -> None:
        records = writer_records(self.writer)
        for source in sources if records is not None else ():
            records.forget(source)

    def _flush(self) -> None:
        if isinstance(self.store, Flushable):
            self.store.flush()
