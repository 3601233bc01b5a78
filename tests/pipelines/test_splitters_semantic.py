"""splitter.semantic (real embedder), splitter.parent, splitter.sentence_window, PDF pages."""

import pytest

from rag.core.component import Component
from rag.core.documents import Document
from rag.core.errors import ConfigError
from rag.core.pipeline import PipelineFile
from rag.pipelines.loaders import FileLoader
from rag.pipelines.parents import ParentChildSplitter, SentenceWindowSplitter
from rag.pipelines.splitters import (
    MarkdownSplitter,
    RecursiveSplitter,
    SemanticSplitter,
    SentenceSplitter,
    load_tokenizer,
    split_sentences,
)

PETS = [
    "Cats are small furry pets.",
    "A cat purrs when it is happy.",
    "Kittens love to play with yarn.",
    "Many cats sleep most of the day.",
]
MARKETS = [
    "The stock market fell sharply on Monday.",
    "Investors sold shares of technology companies.",
    "Bond yields rose as traders feared inflation.",
    "Analysts expect more volatility in the markets.",
]
TWO_TOPICS = " ".join(PETS + MARKETS)


def token_count(text):
    tokenizer, _ = load_tokenizer("all-MiniLM-L6-v2")
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


# -- splitter.semantic -----------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize("buffer_size", [0, 1])
def test_similarity_drops_most_between_the_two_topics(embedder, buffer_size):
    splitter = SemanticSplitter(embedder=embedder, buffer_size=buffer_size)
    similarity = splitter.similarities(TWO_TOPICS, split_sentences(TWO_TOPICS))
    assert len(similarity) == len(PETS) + len(MARKETS) - 1
    assert int(similarity.argmin()) == len(PETS) - 1  # the gap after the last pets sentence


@pytest.mark.integration
@pytest.mark.parametrize(
    ("threshold_type", "threshold"), [("percentile", 90.0), ("absolute", 0.15)]
)
def test_semantic_chunks_follow_the_topics(embedder, threshold_type, threshold):
    splitter = SemanticSplitter(
        embedder=embedder, chunk_size=200, threshold_type=threshold_type, threshold=threshold
    )
    doc = Document(id="notes.txt", text=TWO_TOPICS, metadata={"source": "notes.txt", "page": 3})
    chunks = splitter.run(documents=[doc])["chunks"]
    assert [c.text for c in chunks] == [" ".join(PETS), " ".join(MARKETS)]
    assert [c.metadata["chunk_index"] for c in chunks] == [0, 1]
    assert chunks[1].metadata["start_index"] == TWO_TOPICS.index(MARKETS[0])
    assert {c.metadata["page"] for c in chunks} == {3}


@pytest.mark.integration
def test_token_cap_holds_and_cuts_land_on_the_sharpest_drops(embedder):
    # absolute -1 never cuts on similarity: every cut below comes from the token cap
    splitter = SemanticSplitter(
        embedder=embedder,
        chunk_size=30,
        tokenizer="all-MiniLM-L6-v2",
        threshold_type="absolute",
        threshold=-1.0,
    )
    chunks = splitter.run(documents=[Document(id="d", text=TWO_TOPICS)])["chunks"]
    assert len(chunks) > 2
    assert max(token_count(c.text) for c in chunks) <= 30
    assert " ".join(c.text for c in chunks) == TWO_TOPICS  # nothing lost, order kept
    # the first cut is the largest drop, so no chunk straddles the two topics
    assert not any(PETS[-1] in c.text and MARKETS[0] in c.text for c in chunks)


@pytest.mark.integration
def test_one_sentence_and_a_sentence_longer_than_the_cap(embedder):
    splitter = SemanticSplitter(embedder=embedder, chunk_size=40)
    one = splitter.run(documents=[Document(id="a", text="Only one sentence here.")])
    assert [c.text for c in one["chunks"]] == ["Only one sentence here."]
    long = "word " * 30 + "end."
    chunks = splitter.run(documents=[Document(id="b", text=long)])["chunks"]
    assert all(len(c.text) <= 40 for c in chunks) and len(chunks) > 1


@pytest.mark.integration
def test_semantic_splitter_in_a_pipeline_file_shares_the_embedder(tmp_path, embedder):
    path = tmp_path / "semantic.yaml"
    path.write_text(
        """
components:
  embedder:
    type: embedder.sentence_transformers
    init_parameters: {model: all-MiniLM-L6-v2, device: cpu}
  splitter:
    type: splitter.semantic
    init_parameters:
      embedder: "@embedder"
      chunk_size: 128
      tokenizer: all-MiniLM-L6-v2
      threshold_type: absolute
      threshold: 0.15
      buffer_size: 1
pipelines:
  split:
    components: [splitter]
"""
    )
    app = PipelineFile.load(path)
    splitter = app.components["splitter"]
    assert splitter.embedder is app.components["embedder"]
    assert app.to_dict()["components"]["splitter"]["init_parameters"]["embedder"] == "@embedder"
    again = PipelineFile.load(tmp_path / "again.yaml", text=app.dump())
    assert again.to_dict() == app.to_dict()
    standalone = SemanticSplitter(embedder=embedder, threshold=80.0, buffer_size=0)
    rebuilt = SemanticSplitter.from_dict(standalone.to_dict())
    assert rebuilt == standalone and rebuilt.threshold == 80.0


@pytest.mark.unit
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold_type": "gradient"}, "threshold_type must be one of percentile, absolute"),
        ({"threshold": 120.0}, r"a percentile in \[0, 100\], got 120"),
        ({"threshold_type": "absolute", "threshold": 1.5}, r"cosine similarity in \[-1, 1\]"),
        ({"buffer_size": -1}, "buffer_size must be >= 0"),
        ({"embedder": RecursiveSplitter()}, "embedder must have embed_documents"),
    ],
)
def test_semantic_bad_parameters(kwargs, message):
    class FakeEmbedder(Component):
        def embed_documents(self, texts):  # pragma: no cover - never called
            raise AssertionError

    with pytest.raises(ConfigError, match=message):
        SemanticSplitter(**{"embedder": FakeEmbedder(), **kwargs})


# -- splitter.parent and splitter.sentence_window --------------------------------------------
GUIDE = (
    "# Guide\nThis guide explains ragline.\n\n"
    "## Install\nCreate a virtual environment. Then run pip install ragline. "
    "It needs Python 3.10 or newer.\n\n"
    "## Search\nRun rag search with a question. Hits come back ranked by score."
)


@pytest.mark.unit
def test_parent_child_splitter_carries_the_section_on_every_child():
    splitter = ParentChildSplitter(
        parent=MarkdownSplitter(chunk_size=2000, chunk_overlap=0),
        child=SentenceSplitter(chunk_size=40, chunk_overlap=0),
    )
    doc = Document(id="guide.md", text=GUIDE)
    chunks = splitter.run(documents=[doc])["chunks"]
    parents = MarkdownSplitter(chunk_size=2000, chunk_overlap=0).run(documents=[doc])["chunks"]
    assert len(parents) == 3 and len(chunks) > len(parents)
    by_parent = {p.id: p for p in parents}
    for chunk in chunks:
        parent = by_parent[chunk.metadata["parent_id"]]
        assert chunk.metadata["parent_text"] == parent.text
        assert chunk.text in parent.text
        assert chunk.metadata["section"] == parent.metadata["section"]
        assert GUIDE[chunk.metadata["start_index"] :].startswith(chunk.text)
    assert [c.metadata["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert sorted({c.metadata["parent_index"] for c in chunks}) == [0, 1, 2]
    install = next(c for c in chunks if "pip install" in c.text)
    assert install.metadata["section"] == "Guide > Install"
    assert "Python 3.10" in install.metadata["parent_text"]
    # ids are deterministic and distinct
    again = splitter.run(documents=[doc])["chunks"]
    assert [c.id for c in again] == [c.id for c in chunks] and len({c.id for c in chunks}) == len(
        chunks
    )


@pytest.mark.unit
def test_parent_splitter_round_trips_and_rejects_non_splitters():
    splitter = ParentChildSplitter(
        parent=MarkdownSplitter(chunk_size=1000, chunk_overlap=0),
        child=RecursiveSplitter(chunk_size=100, chunk_overlap=10),
    )
    data = splitter.to_dict()
    assert data["type"] == "splitter.parent"
    assert data["init_parameters"]["child"]["type"] == "splitter.recursive"
    assert ParentChildSplitter.from_dict(data) == splitter
    with pytest.raises(ConfigError, match="child must be a splitter"):
        ParentChildSplitter(parent=RecursiveSplitter(), child=FileLoader())


@pytest.mark.unit
def test_sentence_window_splitter():
    text = "One is first. Two is second. Three is third. Four is fourth. Five is last."
    chunks = SentenceWindowSplitter(window_size=1).run(documents=[Document(id="d", text=text)])[
        "chunks"
    ]
    sentences = [text[a:b] for a, b in split_sentences(text)]
    assert [c.text for c in chunks] == sentences
    assert chunks[0].metadata["window"] == "One is first. Two is second."
    assert chunks[2].metadata["window"] == "Two is second. Three is third. Four is fourth."
    assert chunks[4].metadata["window"] == "Four is fourth. Five is last."
    wide = SentenceWindowSplitter(window_size=10).run(documents=[Document(id="d", text=text)])
    assert {c.metadata["window"] for c in wide["chunks"]} == {text}
    three = SentenceWindowSplitter(window_size=3)
    assert three.to_dict()["type"] == "splitter.sentence_window"
    assert SentenceWindowSplitter.from_dict(three.to_dict()) == three
    with pytest.raises(ConfigError, match="window_size must be >= 0"):
        SentenceWindowSplitter(window_size=-1)


# -- PDF page numbers survive every splitter -------------------------------------------------
def write_pdf(path, pages):
    pypdf = pytest.importorskip("pypdf")
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = pypdf.PdfWriter()
    for text in pages:
        page = writer.add_blank_page(width=600, height=200)
        font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
        )
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 10 Tf 10 100 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
    with path.open("wb") as handle:
        writer.write(handle)


@pytest.mark.integration
def test_every_pdf_chunk_has_its_page_number(tmp_path, embedder):
    path = tmp_path / "report.pdf"
    write_pdf(path, [" ".join(PETS), "", " ".join(MARKETS)])  # page 2 is blank
    docs = FileLoader().run(sources=[str(path)])["documents"]
    splitters = [
        RecursiveSplitter(chunk_size=40, chunk_overlap=0),
        SentenceSplitter(chunk_size=60, chunk_overlap=0),
        MarkdownSplitter(chunk_size=40, chunk_overlap=0),
        SemanticSplitter(embedder=embedder, chunk_size=60),
        SentenceWindowSplitter(window_size=1),
        ParentChildSplitter(
            parent=RecursiveSplitter(chunk_size=400, chunk_overlap=0),
            child=RecursiveSplitter(chunk_size=40, chunk_overlap=0),
        ),
    ]
    for splitter in splitters:
        chunks = splitter.run(documents=docs)["chunks"]
        pages = {c.metadata["page"] for c in chunks}
        assert pages == {1, 3}, type(splitter).__name__
        for chunk in chunks:
            expected = PETS if chunk.metadata["page"] == 1 else MARKETS
            page_text = " ".join(expected)
            assert all(word in page_text for word in chunk.text.split()), type(splitter).__name__
