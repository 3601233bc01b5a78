"""Office and e-book files for ``loader.files``: ``.docx``, ``.pptx``, ``.xlsx`` and ``.epub``.

Each format is read with its well-kept library (python-docx, python-pptx, openpyxl, ebooklib;
``pip install 'ragline[office]'``) and yields one :class:`~rag.core.documents.Document` per
natural unit, whose metadata every chunk of it inherits:

==========  ===========================  ===================================================
format      one document per             metadata
==========  ===========================  ===================================================
``.docx``   heading section              ``headers`` (path), ``section``, ``title``
``.pptx``   slide                        ``slide`` (1-based), ``slide_title``
``.xlsx``   worksheet                    ``sheet`` (name), ``sheet_index`` (1-based)
``.epub``   heading section              ``headers``, ``section``, ``chapter``, ``title``
==========  ===========================  ===================================================

``headers``/``section`` have the shape ``splitter.markdown`` gives Markdown chunks
(``["Guide", "Install"]`` and ``"Guide > Install"``). Tables become one line per row with
cells joined by ``" | "``.

A file that cannot be read is a :class:`~rag.core.errors.LoaderError` naming it: a
password-protected Office file (encrypted OOXML is an OLE compound document, not a zip package),
a DRM-encrypted EPUB, or a corrupt file.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

from rag.core.deps import require
from rag.core.documents import Document
from rag.core.errors import LoaderError, MissingDependencyError

OFFICE_EXTENSIONS = (".docx", ".pptx", ".xlsx", ".epub")

# Encrypted OOXML (and the legacy binary .doc/.ppt/.xls formats) are OLE compound documents.
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# EPUB font obfuscation lists fonts in encryption.xml; only these algorithms leave text readable.
_FONT_OBFUSCATION = ("http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC")
_CELL_SEPARATOR = " | "
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_HTML_HEADING = re.compile(r"^h([1-6])$")
_WHITESPACE = re.compile(r"\s+")
HTML_BLOCKS = frozenset(
    "p div li tr td th br pre blockquote section article table ul ol dt dd figcaption hr".split()  # noqa: SIM905
)
"""HTML elements that start a line of their own (headings aside)."""
_HTML_SKIP = frozenset(("script", "style", "head", "title", "noscript", "template"))


def load_office(source: str, data: bytes, suffix: str) -> Iterator[Document]:
    """Documents of one Office or EPUB file (see the module docstring).

    Args:
        source: The file's path, used as ``source`` metadata and in error messages.
        data: The file's bytes.
        suffix: Its lower-case extension, one of :data:`OFFICE_EXTENSIONS`.

    Raises:
        LoaderError: the file is empty, encrypted, corrupt, or has no text.
        MissingDependencyError: the format's library is not installed.
    """
    kind = suffix.lstrip(".").upper()
    if not data.strip():
        raise LoaderError(source, "empty file")
    if data.startswith(_OLE_SIGNATURE):
        raise LoaderError(
            source,
            f"password-protected (encrypted) {kind} file, or a legacy binary Office file "
            f"renamed to {suffix}: it is an OLE compound document, not a zip package. "
            f"Remove the password (or save it as {suffix}) and ingest it again",
        )
    readers = {".docx": _docx, ".pptx": _pptx, ".xlsx": _xlsx, ".epub": _epub}
    try:
        documents = list(readers[suffix](source, data))
    except (LoaderError, MissingDependencyError):
        raise
    except Exception as err:  # the libraries raise many types for corrupt files
        reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise LoaderError(source, f"corrupt or unreadable {kind} file ({reason})") from None
    if not documents:
        raise LoaderError(source, f"{kind} file has no text")
    yield from documents


def _sections(
    source: str,
    blocks: Iterable[tuple[int | None, str]],
    metadata: dict[str, Any],
) -> list[Document]:
    """Group ``(heading level or None, text)`` blocks into one document per heading section."""
    documents: list[Document] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    headers: list[str] = []

    def flush() -> None:
        text = "\n".join(lines).strip()
        if text:
            number = len(documents) + 1
            documents.append(
                Document(
                    id=f"{source}#section={number}",
                    text=text,
                    metadata={**metadata, "headers": headers, "section": " > ".join(headers)},
                )
            )
        lines.clear()

    for level, text in blocks:
        text = text.strip()
        if not text:
            continue
        if level is None:
            lines.append(text)
            continue
        flush()
        path = [(lvl, title) for lvl, title in path if lvl < level]
        path.append((level, text))
        headers = [title for _, title in path]
        lines.append(text)  # the heading stays in the text: it often names the topic
    flush()
    return documents


def _row_text(cells: Iterable[Any]) -> str:
    values = ["" if value is None else str(value).strip() for value in cells]
    while values and not values[-1]:
        values.pop()
    return _CELL_SEPARATOR.join(values) if any(values) else ""


# -- docx ------------------------------------------------------------------------------------
def _docx(source: str, data: bytes) -> Iterator[Document]:
    docx = require("docx", package="python-docx", extra="office", purpose="Loading .docx")
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))
    metadata: dict[str, Any] = {"source": source, "file_type": "docx"}
    title = (document.core_properties.title or "").strip()

    def blocks() -> Iterator[tuple[int | None, str]]:
        nonlocal title
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                yield from ((None, row) for row in _docx_table(item))
                continue
            style = (item.style.name if item.style is not None else "") or ""
            heading = _HEADING_STYLE.match(style)
            if heading:
                yield int(heading.group(1)), item.text
            else:
                if style.lower() == "title" and not title:
                    title = item.text.strip()
                yield None, item.text

    sections = _sections(source, list(blocks()), metadata)
    for section in sections:
        if title:
            section.metadata["title"] = title
    yield from sections


def _docx_table(table: Any) -> Iterator[str]:
    for row in table.rows:
        seen: set[int] = set()
        cells = []
        for cell in row.cells:  # a merged cell is repeated once per grid column it spans
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(cell.text)
        line = _row_text(cells)
        if line:
            yield line


# -- pptx ------------------------------------------------------------------------------------
def _pptx(source: str, data: bytes) -> Iterator[Document]:
    pptx = require("pptx", package="python-pptx", extra="office", purpose="Loading .pptx")
    presentation = pptx.Presentation(io.BytesIO(data))
    title = (presentation.core_properties.title or "").strip()
    for number, slide in enumerate(presentation.slides, start=1):
        title_shape = slide.shapes.title
        slide_title = title_shape.text_frame.text.strip() if title_shape is not None else ""
        lines = list(_pptx_shapes(slide.shapes))
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame
            if notes is not None and notes.text.strip():
                lines.append(f"Notes: {notes.text.strip()}")
        text = "\n".join(line for line in lines if line.strip())
        if not text:
            continue
        metadata: dict[str, Any] = {"source": source, "file_type": "pptx", "slide": number}
        if slide_title:
            metadata["slide_title"] = slide_title
        if title:
            metadata["title"] = title
        yield Document(id=f"{source}#slide={number}", text=text, metadata=metadata)


def _pptx_shapes(shapes: Iterable[Any]) -> Iterator[str]:
    from pptx.shapes.group import GroupShape  # python-pptx is loaded: _pptx required it

    # Every python-pptx (>= 1.0) shape is a BaseShape, which has has_table and has_text_frame.
    for shape in shapes:
        if isinstance(shape, GroupShape):
            yield from _pptx_shapes(shape.shapes)
        elif shape.has_table:
            for row in shape.table.rows:
                line = _row_text(cell.text for cell in row.cells)
                if line:
                    yield line
        elif shape.has_text_frame:
            yield shape.text_frame.text.strip()


# -- xlsx ------------------------------------------------------------------------------------
def _xlsx(source: str, data: bytes) -> Iterator[Document]:
    openpyxl = require("openpyxl", package="openpyxl", extra="office", purpose="Loading .xlsx")
    # read_only streams rows; data_only reads the values Excel last computed, not formulas
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        title = (workbook.properties.title or "").strip()
        documents = []
        for index, sheet in enumerate(workbook.worksheets, start=1):
            rows = (_row_text(row) for row in sheet.iter_rows(values_only=True))
            text = "\n".join(row for row in rows if row)
            if not text:
                continue
            metadata: dict[str, Any] = {
                "source": source,
                "file_type": "xlsx",
                "sheet": sheet.title,
                "sheet_index": index,
            }
            if title:
                metadata["title"] = title
            documents.append(Document(id=f"{source}#sheet={index}", text=text, metadata=metadata))
    finally:
        workbook.close()
    yield from documents


# -- epub ------------------------------------------------------------------------------------
def _epub(source: str, data: bytes) -> Iterator[Document]:
    ebooklib = require("ebooklib", package="ebooklib", extra="office", purpose="Loading .epub")
    from ebooklib import epub
    from lxml import html as lxml_html

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if "META-INF/encryption.xml" in archive.namelist():
            manifest = archive.read("META-INF/encryption.xml").decode("utf-8", "replace")
            algorithms = re.findall(r'Algorithm="([^"]+)"', manifest)
            if any(algorithm not in _FONT_OBFUSCATION for algorithm in algorithms):
                raise LoaderError(
                    source,
                    "DRM-encrypted EPUB: its content is encrypted (META-INF/encryption.xml); "
                    "use a DRM-free copy",
                )
    book = epub.read_epub(io.BytesIO(data), options={"ignore_ncx": True})
    titles = book.get_metadata("DC", "title")
    title = str(titles[0][0]).strip() if titles else ""
    blocks: list[tuple[int | None, str]] = []
    chapters: list[int] = []  # the chapter (spine position) of each block
    chapter = 0
    for idref, _linear in book.spine:
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        # the file as stored: ebooklib's get_content() re-parses a chapter (cutting it at 256
        # levels of nesting) and re-serialises it
        content = item.content or b""
        if not content.strip():
            continue
        chapter += 1
        # huge_tree: libxml2 otherwise stops reading at 256 levels of nesting and drops the rest
        parser = lxml_html.HTMLParser(huge_tree=True)
        root = lxml_html.document_fromstring(content, parser=parser)
        if any(error.type_name == "ERR_RESOURCE_LIMIT" for error in parser.error_log):
            raise LoaderError(
                source,
                f"chapter {chapter} ({item.get_name()}) nests its elements deeper than "
                f"{_MAX_HTML_DEPTH} levels, past which its text cannot be read; flatten that "
                "chapter's markup (e.g. re-export the book with Calibre)",
            )
        for block in _html_blocks(root):
            blocks.append(block)
            chapters.append(chapter)
    documents: list[Document] = []
    # one section never spans chapters: split the blocks at chapter changes first
    start = 0
    for end in range(1, len(blocks) + 1):
        if end == len(blocks) or chapters[end] != chapters[start]:
            metadata: dict[str, Any] = {
                "source": source,
                "file_type": "epub",
                "chapter": chapters[start],
            }
            if title:
                metadata["title"] = title
            for section in _sections(source, blocks[start:end], metadata):
                section.id = f"{source}#section={len(documents) + 1}"
                documents.append(section)
            start = end
    yield from documents


_MAX_HTML_DEPTH = 2048
"""The deepest nesting libxml2 reads with ``huge_tree`` (lxml); deeper, an EPUB chapter is an
error rather than text silently cut off."""


def html_inline(text: str, pre: bool) -> str:
    """An HTML text node as it reads: each run of white space (the source's line breaks among
    them) is one space, except inside ``pre`` (``pre=True``), whose line breaks are lines."""
    return text if pre else _WHITESPACE.sub(" ", text)


def _html_blocks(root: Any) -> list[tuple[int | None, str]]:
    """``(heading level or None, text)`` of an XHTML document, in reading order (one pass,
    without recursion: a chapter may nest up to :data:`_MAX_HTML_DEPTH` levels)."""
    from lxml import etree

    blocks: list[tuple[int | None, str]] = []
    pieces: list[str] = []

    def flush() -> None:
        for line in "".join(pieces).splitlines():
            line = " ".join(line.split())
            if line:
                blocks.append((None, line))
        pieces.clear()

    body = root.find(".//body")
    top = body if body is not None else root
    walker = etree.iterwalk(top, events=("start", "end"))
    in_pre = 0
    for event, element in walker:
        tag = element.tag.rsplit("}", 1)[-1].lower() if isinstance(element.tag, str) else ""
        heading = _HTML_HEADING.match(tag)
        passed = tag in _HTML_SKIP or not tag or heading  # skipped, or read whole (a heading)
        if event == "start":
            if passed:
                walker.skip_subtree()
                if heading:
                    flush()
                    blocks.append((int(heading.group(1)), " ".join(element.text_content().split())))
                continue
            if tag == "pre":
                in_pre += 1
            if tag in HTML_BLOCKS:
                pieces.append("\n")
            pieces.append(html_inline(element.text or "", in_pre > 0))
            continue
        if not passed:
            if tag in HTML_BLOCKS:
                pieces.append("\n")
            if tag == "pre":
                in_pre -= 1
        if element is not top:
            pieces.append(html_inline(element.tail or "", in_pre > 0))
    flush()
    return blocks
