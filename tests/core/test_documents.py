import numpy as np
import pytest

from rag.core.documents import Chunk, Document, Hit, chunk_id

pytestmark = pytest.mark.unit


def test_chunk_ids_are_deterministic_and_distinct():
    a = Chunk.create(text="hello", source_id="a.md", position=0)
    assert a.id == Chunk.create(text="hello", source_id="a.md", position=0).id
    assert a.id != Chunk.create(text="hello", source_id="a.md", position=1).id
    assert a.id != Chunk.create(text="hello", source_id="b.md", position=0).id
    assert a.id != Chunk.create(text="hello!", source_id="a.md", position=0).id
    assert a.id == chunk_id("a.md", 0, "hello")
    assert a.metadata == {"source": "a.md", "chunk_index": 0}


def test_document_metadata_always_has_source():
    assert Document(id="x.txt", text="t").metadata["source"] == "x.txt"
    assert Document(id="x", text="t", metadata={"source": "y"}).metadata["source"] == "y"


def test_chunk_equality_includes_embedding():
    a = Chunk(id="1", text="t", embedding=np.array([1.0, 2.0]))
    b = Chunk(id="1", text="t", embedding=np.array([1.0, 2.0]))
    c = Chunk(id="1", text="t", embedding=np.array([1.0, 3.0]))
    assert a == b
    assert a != c
    assert a != Chunk(id="1", text="t")


def test_hit_to_dict_shape():
    hit = Hit(Chunk(id="1", text="t", metadata={"source": "s"}), np.float32(0.5))
    assert hit.to_dict() == {"id": "1", "score": 0.5, "text": "t", "metadata": {"source": "s"}}
