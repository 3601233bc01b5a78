"""rag.core.lines: the line reader the loaders and the evaluation datasets share."""

from __future__ import annotations

import io

import pytest

from rag.core.errors import RagError
from rag.core.lines import UndecodableLine, decoded_lines


@pytest.mark.unit
def test_lines_keep_their_ends_and_only_a_leading_byte_order_mark_goes():
    data = "\ufeffa\r\nb\n\ufeffc".encode()
    assert list(decoded_lines(io.BytesIO(data))) == [(1, "a\r\n"), (2, "b\n"), (3, "\ufeffc")]
    assert list(decoded_lines(io.BytesIO(b""))) == []


@pytest.mark.unit
def test_another_encoding_is_read_in_that_encoding():
    assert list(decoded_lines(io.BytesIO("café\n".encode("cp1252")), "cp1252")) == [(1, "café\n")]


@pytest.mark.unit
def test_a_bad_byte_is_reported_by_line_and_offset():
    data = b"first\nsecond\nthi\xffrd\n"
    with pytest.raises(UndecodableLine) as caught:
        list(decoded_lines(io.BytesIO(data)))
    err = caught.value
    assert (err.line, err.byte, err.byte_in_line) == (3, data.index(b"\xff"), 3)
    assert err.reason == "invalid start byte" and err.encoding == "utf-8"
    assert isinstance(err, RagError) and isinstance(err, ValueError)
    assert "line 3: not valid utf-8 text (invalid start byte at byte 16)" in str(err)
