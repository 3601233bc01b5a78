"""``loader.files``: read txt, md, html, pdf, jsonl, csv, docx, pptx, xlsx and epub files.

Office and e-book formats are read in :mod:`rag.pipelines.office` (one document per heading
section, slide or worksheet); a PDF gives one document per page, with ``page`` metadata that
every chunk of it keeps.

A source that cannot be read (missing, unreadable, empty, binary, corrupt, a symbolic link loop,
a FIFO or device, a directory that cannot be listed, a JSONL row nested too deep or holding NaN)
is *recorded* in the ``errors`` output with its reason; the other sources go on.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import errno
import io
import json
import logging
import math
import os
import re
import stat
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rag.core.component import Component
from rag.core.deps import require
from rag.core.documents import Document
from rag.core.errors import ConfigError, InvalidInputError, LoaderError, RagError
from rag.core.limits import allow_long_csv_fields, loads_json
from rag.core.lines import UndecodableLine, decoded_lines, text_encoding
from rag.core.text import markdown_headings
from rag.pipelines.office import HTML_BLOCKS, OFFICE_EXTENSIONS, html_inline, load_office

TEXT_EXTENSIONS = (".txt", ".text", ".rst", ".log")
MARKDOWN_EXTENSIONS = (".md", ".markdown")
HTML_EXTENSIONS = (".html", ".htm")
SUPPORTED_EXTENSIONS = (
    *TEXT_EXTENSIONS,
    *MARKDOWN_EXTENSIONS,
    *HTML_EXTENSIONS,
    ".pdf",
    ".jsonl",
    ".csv",
    *OFFICE_EXTENSIONS,
)


def expand_sources(
    paths: Iterable[str | Path],
    *,
    pattern: str = "**/*",
    extensions: Sequence[str] = SUPPORTED_EXTENSIONS,
    include_hidden: bool = False,
) -> tuple[list[str], list[dict[str, str]]]:
    """Turn files and directories into a sorted list of source files.

    Inside a directory, hidden files and folders (``.git``, ``.obsidian``, ``.env``: a name
    starting with ``.``) are left out unless ``include_hidden``; a hidden path named itself is
    read.

    Returns:
        ``(files, errors)``; a path that does not exist is an error, not an exception.
    """
    files: list[str] = []
    errors: list[dict[str, str]] = []
    for raw in paths:
        path = Path(raw)
        kind, problem = _classify(path)
        if kind == "dir":
            for directory, reason in _unlistable(path, include_hidden):
                errors.append({"source": directory, "error": reason})
            for candidate in sorted(path.glob(pattern)):
                if candidate.suffix.lower() not in extensions:
                    continue
                hidden = any(p.startswith(".") for p in candidate.relative_to(path).parts)
                if hidden and not include_hidden:
                    continue
                kind, problem = _classify(candidate)
                if kind == "file":
                    files.append(candidate.as_posix())
                elif kind != "dir":
                    errors.append({"source": candidate.as_posix(), "error": problem})
        elif kind == "file":
            files.append(path.as_posix())
        else:
            errors.append({"source": path.as_posix(), "error": problem})
    return sorted(dict.fromkeys(files)), errors


def _classify(path: Path) -> tuple[str, str]:
    """``("file" | "dir" | "bad", reason)`` of a path, following symbolic links."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            return "bad", "broken symbolic link (its target does not exist)"
        return "bad", "no such file or directory"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "bad", "symbolic link loop (the link points back to itself)"
        return "bad", f"cannot read: {err.strerror or err}"
    if stat.S_ISDIR(mode):
        return "dir", ""
    if stat.S_ISREG(mode):
        return "file", ""
    what = (
        "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
    )
    return "bad", f"not a regular file ({what}); only files can be ingested"


def _unlistable(root: Path, include_hidden: bool) -> Iterator[tuple[str, str]]:
    """Directories under ``root`` that cannot be listed (their files would be missed)."""
    problems: list[tuple[str, str]] = []

    def record(err: OSError) -> None:
        problems.append(
            (Path(err.filename or root).as_posix(), f"cannot list directory: {err.strerror}")
        )

    for _, folders, _ in os.walk(root, onerror=record):
        if not include_hidden:
            folders[:] = [f for f in folders if not f.startswith(".")]
    yield from problems


def per_source(err: BaseException) -> bool:
    """Whether a loader failure belongs to one source (reported, the run goes on) rather than
    to the configuration (a missing package, a bad parameter: raised, the run stops)."""
    return isinstance(err, InvalidInputError) or not isinstance(err, RagError)


def describe_failure(err: BaseException) -> str:
    """A one-line reason for an unexpected loader failure (no traceback in reports)."""
    if isinstance(err, RecursionError):
        return "content nested too deeply to read"
    if isinstance(err, MemoryError):
        return "too large to load into memory"
    text = str(err).splitlines()[0][:300] if str(err) else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _decode(data: bytes, source: str, encoding: str) -> str:
    if not data.strip():
        raise LoaderError(source, "empty file")
    if b"\x00" in data[:8192]:
        raise LoaderError(source, "binary content (NUL bytes); not a text file")
    try:
        text = data.decode(text_encoding(encoding))
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise _not_text(source, encoding, err.reason, err.start, line) from None
    # Windows (\r\n) and old Mac (\r) line ends read as \n, as open() reads text: a blank line
    # "\r\n\r\n" then ends a paragraph and a sentence, and no chunk carries a stray \r
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)


def _decode_html(data: bytes, source: str, encoding: str) -> str:
    """An HTML page's text; a page that is not valid in the loader's default encoding (UTF-8)
    is read in the charset it declares (``<meta charset="windows-1252">``), if any."""
    try:
        return _decode(data, source, encoding)
    except LoaderError as err:
        found = _META_CHARSET.search(data[:4096])
        if found is None or codecs.lookup(encoding).name != "utf-8":
            raise  # no charset declared, or the loader was told the encoding
        try:
            declared = codecs.lookup(found.group(1).decode("ascii")).name
        except LookupError:
            raise err from None
        return _decode(data, source, declared)


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)^(?:---|\.\.\.)[ \t]*$\n?", re.S | re.M)


def _front_matter(source: str, text: str) -> tuple[str, dict[str, Any]]:
    r"""A Markdown text without its YAML front matter (``---`` ... ``---`` at the top, as Hugo,
    Jekyll, MkDocs and Obsidian write it), and the front matter's fields that metadata can
    hold: text, numbers, booleans, dates (as ISO text) and lists of those.

    Example:
        >>> _front_matter("a.md", "---\ntitle: HNSW\ntags: [ann, graph]\n---\n# Tuning\n")
        ('# Tuning\n', {'title': 'HNSW', 'tags': ['ann', 'graph']})

    Raises:
        LoaderError: the front matter is not valid YAML (the message names its line).
    """
    found = _FRONT_MATTER.match(text)
    if found is None:
        return text, {}
    import yaml

    try:
        data = yaml.safe_load(found.group(1))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise LoaderError(
            source,
            f"front matter is not valid YAML{where}: {problem}; fix it, or begin the file with "
            "something other than a '---' line",
        ) from None
    if data is None:
        data = {}  # empty front matter
    if not isinstance(data, dict):
        return text, {}  # a rule and a paragraph, not front matter
    if not text[found.end() :].strip():
        raise LoaderError(source, "Markdown file has no text after its front matter")
    return text[found.end() :], {
        str(name): kept
        for name, value in data.items()
        if (kept := _metadata_value(value)) is not None
    }


def _metadata_value(value: Any) -> Any:
    """A row's or front matter's ``value`` as metadata holds it: text, a finite number, a
    boolean, a date (as ISO text) or a list of those; ``None`` for anything else (a mapping,
    a nested list, null)."""
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, list):
        items = [_metadata_value(v) for v in value if not isinstance(v, (list, dict))]
        return items if len(items) == len(value) and None not in items else None
    return None


def _not_text(source: str, encoding: str, reason: str, byte: int, line: int) -> LoaderError:
    return LoaderError(
        source,
        f"not valid {encoding} text ({reason} at byte {byte}, line {line}); re-save it as "
        "UTF-8, or give the loader its encoding (init_parameters: {encoding: cp1252})",
    )


_LINE_ELEMENTS = HTML_BLOCKS | {"h1", "h2", "h3", "h4", "h5", "h6"}


logger = logging.getLogger("rag.ingest")
PDF_NOTES = 5
"""The most of pypdf's messages about one file that its warning or error quotes."""


class _ThreadMessages(logging.Handler):
    """Keeps the messages logged on this thread (another thread may read another file)."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.messages, self.thread = messages, threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage().strip())


class _PypdfMessages:
    """pypdf's warnings while it reads a file ("incorrect startxref pointer(3)"), kept per
    reading thread instead of printed on stderr without the file's name: the ``pypdf`` logger
    stops propagating while any thread reads, and propagates as before when none does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers = 0
        self._propagate = True

    @contextmanager
    def kept_in(self, messages: list[str]) -> Iterator[None]:
        pypdf_log = logging.getLogger("pypdf")
        handler = _ThreadMessages(messages)
        with self._lock:
            if self._readers == 0:
                self._propagate, pypdf_log.propagate = pypdf_log.propagate, False
            self._readers += 1
            pypdf_log.addHandler(handler)
        try:
            yield
        finally:
            with self._lock:
                pypdf_log.removeHandler(handler)
                self._readers -= 1
                if self._readers == 0:
                    pypdf_log.propagate = self._propagate


_pypdf_messages = _PypdfMessages().kept_in


def _pdf_notes(messages: list[str]) -> str:
    unique = list(dict.fromkeys(m for m in messages if m))
    more = f"; and {len(unique) - PDF_NOTES} more" if len(unique) > PDF_NOTES else ""
    return "; ".join(unique[:PDF_NOTES]) + more


def html_lines(body: Any) -> list[str]:
    r"""The text of a BeautifulSoup ``body``, one line per block element (``p``, ``li``, ``h2``,
    ``br``, a table cell, ...): inline elements (``b``, ``a``, ``code``) stay inside their line,
    the line breaks of the HTML source inside a block are spaces, and ``pre`` keeps its lines.
    One pass over the tree (deep nesting and long pages cost linear time).

    Example:
        >>> import bs4
        >>> html = "<p>Three.\n<b>M</b> is the\nlinks.</p><ul><li>one</li><li>two</li></ul>"
        >>> html_lines(bs4.BeautifulSoup(html, "html.parser"))
        ['Three. M is the links.', 'one', 'two']
    """
    import bs4

    block_of: dict[int, int | None] = {}  # element -> its nearest block element (or itself)
    in_pre: dict[int, bool] = {}
    pieces: list[str] = []
    last_block: int | None = None
    for node in body.descendants:
        parent = id(node.parent)
        if isinstance(node, bs4.Tag):
            block = id(node) if node.name in _LINE_ELEMENTS else block_of.get(parent)
            block_of[id(node)] = block
            in_pre[id(node)] = node.name == "pre" or in_pre.get(parent, False)
            if node.name == "br":
                pieces.append("\n")
        elif type(node) is bs4.NavigableString:  # not a comment or a doctype
            block = block_of.get(parent)
            if block != last_block:
                pieces.append("\n")
                last_block = block
            pieces.append(html_inline(str(node), in_pre.get(parent, False)))
    return [line.strip() for line in "".join(pieces).splitlines() if line.strip()]


class FileLoader(Component):
    """Load files by extension into :class:`~rag.core.documents.Document` objects.

    Args:
        text_field: JSONL/CSV field holding the text.
        title_field: JSONL/CSV field holding a title (prepended to the text, kept in metadata).
        id_field: JSONL/CSV field holding a row id (default: ``_id`` or ``id`` when present,
            else the line number). Stored as ``doc_id`` metadata.
        metadata_fields: JSONL/CSV fields copied into metadata (``None``: every other field
            whose value is a string, number or boolean).
        encoding: Text encoding of text files.

    Example:
        >>> loader = FileLoader()
        >>> result = loader.run(sources=["examples/corpus/faiss.md"])
        >>> result["documents"][0].metadata["title"]
        'FAISS'
    """

    outputs = {"documents": list[Document], "errors": list[dict[str, Any]]}

    def __init__(
        self,
        *,
        text_field: str = "text",
        title_field: str | None = "title",
        id_field: str | None = None,
        metadata_fields: list[str] | None = None,
        encoding: str = "utf-8",
    ) -> None:
        if not text_field:
            raise ConfigError("text_field must name a field", field="text_field")
        self.text_field = text_field
        self.title_field = title_field
        self.id_field = id_field
        self.metadata_fields = metadata_fields
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ConfigError(
                f"unknown encoding {encoding!r}; use a Python codec name such as utf-8, "
                "cp1252 or latin-1",
                field="encoding",
            ) from None
        self.encoding = encoding

    def run(self, sources: list[str]) -> dict[str, Any]:
        documents: list[Document] = []
        errors: list[dict[str, Any]] = []
        for source in sources:
            found: list[Document] = []
            row_errors: list[dict[str, Any]] = []
            try:
                for item in self.load(source):
                    if isinstance(item, LoaderError):
                        row_errors.append({"source": item.source, "error": item.reason})
                    else:
                        found.append(item)
            except LoaderError as err:
                # a source that fails part-way (load() streams JSONL) contributes nothing
                errors.append({"source": err.source, "error": err.reason})
                continue
            except Exception as err:  # any loader failure is reported per source
                if not per_source(err):
                    raise
                errors.append({"source": source, "error": describe_failure(err)})
                continue
            documents.extend(found)
            errors.extend(row_errors)
        return {"documents": documents, "errors": errors}

    def load(self, source: str) -> Iterator[Document | LoaderError]:
        """Documents of one source, lazily; row-level problems are yielded as ``LoaderError``.

        JSONL files are read line by line, so a file much larger than memory streams with flat
        memory use; the other formats are read whole (one document, or one per page or row).

        Raises:
            LoaderError: the whole source cannot be read. For a streamed JSONL file this can
                happen after some documents were yielded (invalid text further down).
        """
        path = Path(source)
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED_EXTENSIONS:
            raise LoaderError(
                source,
                f"unsupported file type '{suffix or '(none)'}'; supported: "
                f"{', '.join(SUPPORTED_EXTENSIONS)}",
            )
        kind, problem = _classify(path)
        if kind != "file":
            # Opening a FIFO would block for ever; a loop or a directory has nothing to read.
            raise LoaderError(source, problem or "a directory, not a file")
        if suffix in (".jsonl", ".csv"):
            stream = self._jsonl_stream if suffix == ".jsonl" else self._csv_stream
            yield from stream(source, path)
            return
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise LoaderError(source, "no such file") from None
        except OSError as err:
            raise LoaderError(source, f"cannot read: {err.strerror or err}") from None
        if suffix == ".pdf":
            yield from self._pdf(source, data)
        elif suffix in OFFICE_EXTENSIONS:
            yield from load_office(source, data, suffix)
        elif suffix in HTML_EXTENSIONS:
            yield self._html(source, _decode_html(data, source, self.encoding))
        else:
            text = _decode(data, source, self.encoding)
            metadata: dict[str, Any] = {"source": source, "file_type": suffix.lstrip(".")}
            if suffix in MARKDOWN_EXTENSIONS:
                text, fields = _front_matter(source, text)
                title = fields.pop("title", None) or next(
                    (name for _, level, name in markdown_headings(text) if level == 1), None
                )
                if title not in (None, ""):
                    metadata["title"] = str(title)  # "title: 2024" is text like any title
                for name, value in fields.items():
                    metadata.setdefault(name, value)
            yield Document(id=source, text=text, metadata=metadata)

    def _html(self, source: str, text: str) -> Document:
        bs4 = require("bs4", package="beautifulsoup4", extra="loaders", purpose="Loading HTML")
        soup = bs4.BeautifulSoup(text, "html.parser")
        for tag in soup(["script", "style", "noscript", "template"]):
            tag.decompose()
        title = soup.title.get_text(strip=True) if soup.title else None
        content = "\n".join(html_lines(soup.body or soup))
        if not content:
            raise LoaderError(source, "HTML file has no text")
        metadata: dict[str, Any] = {"source": source, "file_type": "html"}
        if title:
            metadata["title"] = title
        return Document(id=source, text=content, metadata=metadata)

    def _pdf(self, source: str, data: bytes) -> Iterator[Document | LoaderError]:
        pypdf = require("pypdf", package="pypdf", extra="loaders", purpose="Loading PDF")
        if not data.strip():
            raise LoaderError(source, "empty file")
        notes: list[str] = []
        try:
            with _pypdf_messages(notes):
                reader = pypdf.PdfReader(io.BytesIO(data))
                # an owner password alone (printing or copying restricted) opens with ""
                if reader.is_encrypted and not reader.decrypt(""):
                    raise LoaderError(
                        source,
                        "password-protected PDF: it opens only with its password; remove it "
                        "(e.g. qpdf --decrypt --password=PASSWORD in.pdf out.pdf) and ingest it "
                        "again",
                    )
                pages = list(reader.pages)
                title = None
                if reader.metadata and reader.metadata.title:
                    title = str(reader.metadata.title)
        except LoaderError:
            raise
        except Exception as err:  # pypdf raises many types for corrupt files
            seen = f" (pypdf: {_pdf_notes(notes)})" if notes else ""
            raise LoaderError(source, f"corrupt or unreadable PDF: {err}{seen}") from None
        found = False
        for number, page in enumerate(pages, start=1):
            try:
                with _pypdf_messages(notes):
                    text = page.extract_text() or ""
            except Exception as err:
                yield LoaderError(f"{source}#page={number}", f"cannot extract text: {err}")
                continue
            if not text.strip():
                continue
            found = True
            metadata: dict[str, Any] = {"source": source, "page": number, "file_type": "pdf"}
            if title:
                metadata["title"] = title
            yield Document(id=f"{source}#page={number}", text=text, metadata=metadata)
        if notes:
            logger.warning(
                "%s: read with repairs; check its text (pypdf: %s)", source, _pdf_notes(notes)
            )
        if not found:
            raise LoaderError(source, "PDF has no extractable text (scanned images need OCR)")

    def _record(self, source: str, row: dict[str, Any], line: int) -> Document | LoaderError:
        text = row.get(self.text_field)
        if not isinstance(text, str):
            return LoaderError(
                f"{source}:{line}",
                f"field '{self.text_field}' is missing or not a string "
                f"(fields: {', '.join(map(str, row)) or 'none'}); set text_field",
            )
        id_key = self.id_field or next((k for k in ("_id", "id") if k in row), None)
        if self.id_field and self.id_field not in row:
            return LoaderError(f"{source}:{line}", f"id field '{self.id_field}' is missing")
        row_id = str(row[id_key]) if id_key else str(line)
        title = row.get(self.title_field) if self.title_field else None
        full_text = f"{title}\n\n{text}" if isinstance(title, str) and title.strip() else text
        if not full_text.strip():
            return LoaderError(f"{source}:{line}", "empty text")
        metadata: dict[str, Any] = {"source": source, "doc_id": row_id, "line": line}
        if isinstance(title, str) and title.strip():
            metadata["title"] = title
        skip = {self.text_field, self.title_field, id_key}
        fields = (
            self.metadata_fields
            if self.metadata_fields is not None
            else [k for k in row if k not in skip]
        )
        for name in fields:
            value = _metadata_value(row.get(name))
            if value is not None:
                metadata.setdefault(name, value)
        return Document(id=f"{source}#{row_id}", text=full_text, metadata=metadata)

    def _lines(self, source: str, path: Path) -> Iterator[tuple[int, str]]:
        """``(line number, line)`` of a text file read lazily, with the checks and messages of
        :func:`_decode` (empty, binary, not valid in the encoding: the byte offset and line)."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise LoaderError(source, "no such file") from None
        except OSError as err:
            raise LoaderError(source, f"cannot read: {err.strerror or err}") from None
        with handle:
            try:
                head = handle.read(8192)
                if b"\x00" in head:
                    raise LoaderError(source, "binary content (NUL bytes); not a text file")
                if not head.strip():
                    while block := handle.read(1 << 20):
                        if block.strip():
                            break
                    else:
                        raise LoaderError(source, "empty file")
                handle.seek(0)
                yield from decoded_lines(handle, self.encoding)
            except UndecodableLine as err:
                raise _not_text(source, self.encoding, err.reason, err.byte, err.line) from None
            except OSError as err:
                raise LoaderError(source, f"cannot read: {err.strerror or err}") from None

    def _jsonl_stream(self, source: str, path: Path) -> Iterator[Document | LoaderError]:
        """Read a JSONL file line by line: memory stays flat however large the file is."""
        for number, line in self._lines(source, path):
            yield from self._jsonl_line(source, line, number)

    def _jsonl_line(self, source: str, line: str, number: int) -> Iterator[Document | LoaderError]:
        if not line.strip():
            return
        try:
            row = loads_json(line, where=f"{source}:{number}")
        except json.JSONDecodeError as err:
            yield LoaderError(f"{source}:{number}", f"invalid JSON: {err.msg}")
            return
        except InvalidInputError as err:
            at = f"field '{err.path}': " if err.path else ""
            yield LoaderError(f"{source}:{number}", at + err.message)
            return
        if not isinstance(row, dict):
            yield LoaderError(f"{source}:{number}", "each line must be a JSON object")
            return
        yield self._record(source, row, number)

    def _csv_stream(self, source: str, path: Path) -> Iterator[Document | LoaderError]:
        """Read a CSV file row by row (quoted fields may span lines); memory stays flat."""
        allow_long_csv_fields()
        reader = csv.DictReader(line for _, line in self._lines(source, path))
        try:
            fieldnames = reader.fieldnames
        except csv.Error as err:
            raise LoaderError(f"{source}:1", f"invalid CSV header: {err}") from None
        if not fieldnames or self.text_field not in fieldnames:
            raise LoaderError(
                source,
                f"CSV header has no '{self.text_field}' column "
                f"(columns: {', '.join(fieldnames or [])}); set text_field",
            )
        number = 1  # rows are numbered as lines of a file without multi-line fields
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                yield LoaderError(f"{source}:{reader.line_num}", f"invalid CSV: {err}")
                return
            number += 1
            yield self._record(source, dict(row), number)
