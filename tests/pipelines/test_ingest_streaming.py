"""Streaming pieces of ingestion: the JSONL loader and the overlapped, length-sorted encoder."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from rag.connectors.embedders.sentence_transformers import padding_cuts
from rag.core.errors import LoaderError
from rag.pipelines.loaders import FileLoader


def rows(n: int) -> str:
    return "".join(json.dumps({"_id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(n))


@pytest.mark.unit
def test_jsonl_is_read_lazily_line_by_line(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text(rows(3) + "not json\n" + rows(1))
    stream = FileLoader().load(str(path))
    first = next(stream)  # one line parsed, the rest not yet
    assert first.id == f"{path}#d0"
    rest = list(stream)
    assert [type(x).__name__ for x in rest] == ["Document", "Document", "LoaderError", "Document"]
    assert rest[2].source == f"{path}:4"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"  \n\n", "empty file"),
        (b'{"text": "a"}\x00\n', "binary content (NUL bytes); not a text file"),
    ],
)
def test_jsonl_whole_file_errors_keep_their_messages(tmp_path, content, reason):
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    with pytest.raises(LoaderError) as caught:
        list(FileLoader().load(str(path)))
    assert caught.value.reason == reason
    assert FileLoader().run(sources=[str(path)]) == {
        "documents": [],
        "errors": [{"source": str(path), "error": reason}],
    }


@pytest.mark.unit
def test_invalid_text_further_down_fails_the_whole_source_in_run(tmp_path):
    path = tmp_path / "x.jsonl"
    data = rows(2).encode() + b'{"text": "\xff"}\n'
    path.write_bytes(data)
    result = FileLoader().run(sources=[str(path)])
    assert result["documents"] == []  # as before streaming: a source that fails gives nothing
    assert result["errors"][0]["error"].startswith("not valid utf-8 text (invalid start byte")
    offset = data.index(b"\xff")  # the offset in the file, as the whole-file decode gave
    assert f"at byte {offset}, line 3)" in result["errors"][0]["error"]


@pytest.mark.integration
def test_overlapped_encoder_equals_plain_encode(embedder):
    texts = [f"sentence {i} " + "word " * (i % 17) for i in range(150)]  # > one batch, mixed
    fast = embedder.embed_documents(texts)
    plain = embedder.sentence_transformer.encode(
        texts, batch_size=embedder.batch_size, normalize_embeddings=True
    )
    assert fast.shape == (150, embedder.dimension) and fast.dtype == np.float32
    np.testing.assert_allclose(fast, plain, atol=1e-5)


@pytest.mark.integration
def test_overlapped_encoder_raises_tokenizer_errors_in_the_caller(embedder):
    with pytest.raises(Exception):  # noqa: B017 - whatever the tokenizer raises
        embedder._encode(["fine"] * 40 + [None] * 40)  # type: ignore[list-item]


@pytest.mark.integration
def test_encoder_batches_texts_by_their_length_in_word_pieces(embedder, monkeypatch):
    # Characters and word pieces disagree here: "ab ab ab" is one piece per 3 characters,
    # "internationalization" one word of 20; sorted by characters, batches would mix lengths.
    texts = [("ab " * (i + 1)).strip() for i in range(40)]
    texts += [" ".join(["internationalization"] * (i % 8 + 1)) for i in range(40)]
    model = embedder.sentence_transformer
    seen: list[list[int]] = []
    preprocess = model.preprocess

    def recording(batch, **options):
        seen.append(embedder._lengths(list(batch)))
        return preprocess(batch, **options)

    monkeypatch.setattr(model, "preprocess", recording)
    vectors = embedder.embed_documents(texts)
    assert sum(map(len, seen)) == len(texts)
    assert all(embedder.batch_size // 4 <= len(batch) <= embedder.batch_size for batch in seen[:-1])
    for longer, shorter in itertools.pairwise(seen):
        assert min(longer) >= max(shorter)  # no batch pads a short text to a long one
    lengths = sorted(embedder._lengths(texts), reverse=True)
    cut_at = [0, *itertools.accumulate(map(len, seen))]  # on the CPU: where padding is least
    assert [(a, b) for a, b in itertools.pairwise(cut_at)] == padding_cuts(
        lengths, embedder.batch_size, embedder.batch_size // 4
    )
    plain = model.encode(texts, batch_size=embedder.batch_size, normalize_embeddings=True)
    np.testing.assert_allclose(vectors, plain, atol=1e-5)
