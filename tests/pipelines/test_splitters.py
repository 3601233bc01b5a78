import itertools

import pytest

from rag.core.documents import Document
from rag.core.errors import ConfigError
from rag.pipelines.splitters import (
    MarkdownSplitter,
    RecursiveSplitter,
    SentenceSplitter,
    load_tokenizer,
    split_sentences,
)

LONG_TEXT = " ".join(
    f"Sentence number {i} talks about vector search, embeddings and chunking strategies."
    for i in range(120)
)


def token_count(text):
    tokenizer, _ = load_tokenizer("all-MiniLM-L6-v2")
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.mark.unit
def test_recursive_character_split_keeps_order_and_overlap():
    splitter = RecursiveSplitter(chunk_size=60, chunk_overlap=20)
    doc = Document(id="d", text=LONG_TEXT[:600].replace(",", "").replace(".", ""))
    chunks = splitter.run(documents=[doc])["chunks"]
    assert all(len(c.text) <= 60 for c in chunks)
    assert [c.metadata["chunk_index"] for c in chunks] == list(range(len(chunks)))
    # consecutive chunks overlap: the start of chunk i+1 lies inside chunk i
    for first, second in itertools.pairwise(chunks):
        assert second.metadata["start_index"] < first.metadata["start_index"] + len(first.text)
    assert chunks[0].metadata["source"] == "d"


@pytest.mark.unit
def test_ids_are_stable_across_runs():
    doc = Document(id="d", text=LONG_TEXT)
    one = [c.id for c in RecursiveSplitter(chunk_size=80).run(documents=[doc])["chunks"]]
    two = [c.id for c in RecursiveSplitter(chunk_size=80).run(documents=[doc])["chunks"]]
    assert one == two and len(set(one)) == len(one)


@pytest.mark.integration
@pytest.mark.parametrize("cls", [RecursiveSplitter, SentenceSplitter, MarkdownSplitter])
def test_token_sized_chunks_never_exceed_the_limit(cls):
    splitter = cls(chunk_size=64, chunk_overlap=1, tokenizer="all-MiniLM-L6-v2")
    text = "# Head\n\n" + LONG_TEXT + "\n\n" + "x" * 3000 + " supercalifragilistic" * 50
    chunks = splitter.run(documents=[Document(id="d", text=text)])["chunks"]
    counts = [token_count(c.text) for c in chunks]
    assert max(counts) <= 64
    assert sum(counts) >= token_count(text) * 0.95  # nothing silently dropped


@pytest.mark.integration
def test_chunk_size_above_model_limit_is_refused():
    splitter = RecursiveSplitter(chunk_size=300, chunk_overlap=0, tokenizer="all-MiniLM-L6-v2")
    with pytest.raises(ConfigError, match=r"chunk_size 300 exceeds.*chunk_size <= 254"):
        splitter.warm_up()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_size": 0}, "chunk_size must be at least 1"),
        ({"chunk_size": 10, "chunk_overlap": 10}, "chunk_overlap must be"),
    ],
)
def test_bad_sizes(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RecursiveSplitter(**kwargs)


@pytest.mark.unit
def test_sentence_splitter_keeps_sentences_whole():
    text = "Dr. Smith went home. He slept! Did he dream? Yes. The end."
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == [
        "Dr. Smith went home.",
        "He slept!",
        "Did he dream?",
        "Yes.",
        "The end.",
    ]
    chunks = SentenceSplitter(chunk_size=35, chunk_overlap=1).run(
        documents=[Document(id="d", text=text)]
    )["chunks"]
    assert [c.text for c in chunks] == [
        "Dr. Smith went home. He slept!",
        "He slept! Did he dream? Yes.",
        "Yes. The end.",
    ]


@pytest.mark.unit
def test_sentence_splitting_is_the_one_of_core_text():
    import rag.core.text

    assert split_sentences is rag.core.text.sentences
    text = 'He said "We won." Then Acme Ltd. (the maker) grew. See Fig. 3 there.'
    chunks = SentenceSplitter(chunk_size=40, chunk_overlap=0).run(
        documents=[Document(id="d", text=text)]
    )["chunks"]
    assert [c.text for c in chunks] == [
        'He said "We won."',
        "Then Acme Ltd. (the maker) grew.",
        "See Fig. 3 there.",
    ]


def markdown_chunks(text, **params):
    splitter = MarkdownSplitter(chunk_size=200, chunk_overlap=0, **params)
    return splitter.run(documents=[Document(id="g.md", text=text)])["chunks"]


@pytest.mark.unit
def test_markdown_setext_headings_are_headers_and_a_rule_under_a_list_is_not():
    text = (
        "Guide\n=====\n\nIntro.\n\nInstall\n-------\n\nRun pip.\n\n```\nnot a header\n===\n```\n"
        "\n- an item\n---\n\nStill install.\n\n# Other\n\nEnd."
    )
    chunks = markdown_chunks(text)
    assert [c.metadata["section"] for c in chunks] == ["Guide", "Guide > Install", "Other"]
    assert "not a header\n===" in chunks[1].text and "Still install." in chunks[1].text


@pytest.mark.unit
def test_markdown_header_path_and_code_fences():
    text = (
        "Preamble.\n# Guide\nIntro.\n## Install\nRun pip.\n```\n# not a header\n```\n"
        "### Linux\nUse apt.\n## Usage\nCall it.\n# Other\nEnd."
    )
    chunks = markdown_chunks(text)
    assert [c.metadata["headers"] for c in chunks] == [
        [],
        ["Guide"],
        ["Guide", "Install"],
        ["Guide", "Install", "Linux"],
        ["Guide", "Usage"],
        ["Other"],
    ]
    assert "# not a header" in chunks[2].text
    with_path = markdown_chunks(text, include_header_path=True)
    assert with_path[3].text.startswith("Guide > Install > Linux\n")
    assert with_path[3].metadata["section"] == "Guide > Install > Linux"
