"""Text files read line by line: memory stays flat however large the file, and a line that is not
valid in the file's encoding is reported by number and byte offset.

The readers of JSONL, CSV and plain-text files (the loaders, evaluation datasets, ``rag ask
--questions``) share :func:`decoded_lines` and turn :class:`UndecodableLine` into their own
error, which names the file and the fix.

Example:
    >>> import io
    >>> list(decoded_lines(io.BytesIO(b"\\xef\\xbb\\xbfone\\ntwo\\n")))
    [(1, 'one\\n'), (2, 'two\\n')]
    >>> try:
    ...     list(decoded_lines(io.BytesIO(b"ok\\ncaf\\xe9\\n")))
    ... except UndecodableLine as err:
    ...     print(err.line, err.byte, err.byte_in_line, err.reason)
    2 6 3 invalid continuation byte
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import BinaryIO

from rag.core.errors import RagError

__all__ = ["UndecodableLine", "decoded_lines", "text_encoding"]


class UndecodableLine(RagError, ValueError):
    """A line of a text file is not valid in the encoding it is read in.

    Attributes:
        line: The line's number (1 is the first).
        byte: The offending byte's offset in the file.
        byte_in_line: Its offset in the line.
        reason: The codec's reason (``"invalid start byte"``, ...).
        encoding: The encoding the file was read in.
    """

    def __init__(
        self, *, line: int, byte: int, byte_in_line: int, reason: str, encoding: str
    ) -> None:
        self.line = line
        self.byte = byte
        self.byte_in_line = byte_in_line
        self.reason = reason
        self.encoding = encoding
        super().__init__(f"line {line}: not valid {encoding} text ({reason} at byte {byte})")


def text_encoding(encoding: str) -> str:
    """The codec that reads the start of a file in ``encoding``: ``utf-8-sig`` for UTF-8, as a
    byte order mark (Windows editors, Excel's CSV) is no text.

    >>> text_encoding("UTF8"), text_encoding("cp1252")
    ('utf-8-sig', 'cp1252')
    """
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def decoded_lines(handle: BinaryIO, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of an open binary file, each line decoded on its own (its line
    end kept). A UTF-8 byte order mark before the first line (Windows editors, Excel's CSV) is
    no text and is dropped.

    Raises:
        UndecodableLine: a line is not valid in ``encoding``.
    """
    first = text_encoding(encoding)
    offset = 0
    for number, raw in enumerate(handle, start=1):
        try:
            line = raw.decode(first if number == 1 else encoding)
        except UnicodeDecodeError as err:
            raise UndecodableLine(
                line=number,
                byte=offset + err.start,
                byte_in_line=err.start,
                reason=err.reason,
                encoding=encoding,
            ) from None
        offset += len(raw)
        yield number, line
