"""splitter.recursive / splitter.markdown ``balanced``: fewest chunks, about equal length; and
``sentence_boundaries``: chunks end where sentences end."""

from __future__ import annotations

import itertools
import math

import pytest

from rag.core.documents import Document
from rag.core.errors import ConfigError
from rag.core.pipeline import PipelineFile
from rag.core.text import sentences
from rag.pipelines.splitters import MarkdownSplitter, RecursiveSplitter

pytestmark = pytest.mark.unit

SENTENCES = [f"Sentence number {n} talks about wing flutter." for n in range(12)]
BODY = " ".join(SENTENCES)


def texts(splitter, text: str) -> list[str]:
    return [c.text for c in splitter.run(documents=[Document(id="d", text=text)])["chunks"]]


def test_no_scrap_at_the_end():
    size = int(len(BODY) * 0.6)  # 1.7 chunks of text
    greedy = texts(RecursiveSplitter(chunk_size=size, chunk_overlap=0), BODY)
    balanced = texts(RecursiveSplitter(chunk_size=size, chunk_overlap=0, balanced=True), BODY)
    assert len(greedy) == len(balanced) == 2
    lengths = [len(t) for t in balanced]
    assert max(lengths) <= size
    assert min(lengths) / max(lengths) > 0.8  # greedy: a full chunk and the rest
    assert min(len(t) for t in greedy) / max(len(t) for t in greedy) < 0.8
    assert " ".join(balanced) == BODY  # nothing lost, nothing repeated, in order


def test_a_title_is_not_left_alone():
    text = "Flutter of thin wings\n\n" + BODY
    size = len(" ".join(SENTENCES[:11])) + 1  # 11 sentences fill a chunk, the title does not fit
    greedy = texts(RecursiveSplitter(chunk_size=size, chunk_overlap=0), text)
    balanced = texts(RecursiveSplitter(chunk_size=size, chunk_overlap=0, balanced=True), text)
    assert greedy[0] == "Flutter of thin wings"  # the greedy merge's title-only chunk
    assert balanced[0].startswith("Flutter of thin wings\n\nSentence number 0")
    assert len(balanced) == math.ceil(len(text) / size) == 2


@pytest.mark.parametrize("size", [60, 100, 170, 400])
def test_sizes_hold_and_chunk_count_is_the_fewest_or_one_more(size):
    splitter = RecursiveSplitter(chunk_size=size, chunk_overlap=0, balanced=True)
    chunks = texts(splitter, BODY)
    assert all(len(c) <= size for c in chunks)
    assert math.ceil(len(BODY) / size) <= len(chunks) <= math.ceil(len(BODY) / size) + 1
    assert " ".join(chunks) == BODY
    # At sentence ends: the fewest chunks of whole sentences, or one more.
    at_sentences = RecursiveSplitter(
        chunk_size=size, chunk_overlap=0, balanced=True, sentence_boundaries=True
    )
    chunks = texts(at_sentences, BODY)
    assert all(len(c) <= size for c in chunks) and " ".join(chunks) == BODY
    assert all(c.endswith(".") for c in chunks)
    per_chunk = (size + 1) // (len(SENTENCES[0]) + 1)
    assert len(chunks) <= math.ceil(len(SENTENCES) / per_chunk) + 1


def test_overlap_repeats_whole_pieces_within_the_size():
    splitter = RecursiveSplitter(chunk_size=150, chunk_overlap=50, balanced=True)
    chunks = texts(splitter, BODY)
    assert all(len(c) <= 150 for c in chunks)
    for before, after in itertools.pairwise(chunks):
        shared = next(n for n in range(len(after), 0, -1) if before.endswith(after[:n]))
        assert 0 < shared <= 50


def test_model_tokens_and_markdown_sections():
    splitter = RecursiveSplitter(
        chunk_size=40, chunk_overlap=0, tokenizer="all-MiniLM-L6-v2", balanced=True
    )
    splitter.warm_up()
    chunks = texts(splitter, BODY)
    counts = [len(splitter._tokenizer(c, add_special_tokens=False)["input_ids"]) for c in chunks]
    assert max(counts) <= 40 and min(counts) >= 20
    doc = Document(id="g.md", text="# Guide\n" + BODY + "\n## Install\nRun pip.")
    md = MarkdownSplitter(chunk_size=200, chunk_overlap=0, balanced=True).run(documents=[doc])
    sections = [c.metadata["section"] for c in md["chunks"]]
    assert sections[-1] == "Guide > Install" and set(sections[:-1]) == {"Guide"}
    guide = [len(c.text) for c in md["chunks"][:-1]]
    assert max(guide) <= 200 and min(guide) / max(guide) > 0.8


def test_balanced_must_be_a_boolean(tmp_path):
    with pytest.raises(ConfigError, match="balanced must be true or false, got 'yes'"):
        RecursiveSplitter(balanced="yes")  # type: ignore[arg-type]
    text = """
components:
  splitter: {type: splitter.markdown, init_parameters: {chunk_size: 240, balanced: true}}
pipelines:
  ingest: {components: [splitter]}
"""
    loaded = PipelineFile.load("p.yaml", text=text)
    assert loaded.components["splitter"].balanced is True
    assert PipelineFile.load("p.yaml", text=loaded.dump()).to_dict() == loaded.to_dict()


# --- sentence_boundaries -----------------------------------------------------------------------

# Natural-question corpora (WikiQA) quote each sentence: `... ." "Next ...`, where ". " never
# matches; "Dr." and "U.S." are periods that end nothing.
QUOTED = " ".join(
    f'"Dr. Roe number {n} of the U.S. Navy studied flutter, drag, lift and stall on thin wings."'
    for n in range(10)
)


def ends_inside_a_sentence(text: str, chunks: list[str]) -> list[str]:
    ends = {text[a:b] for a, b in sentences(text)}
    return [c for c in chunks[:-1] if not any(c.endswith(e) for e in ends)]


@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize("size", [100, 200, 330])
def test_chunks_end_at_sentence_ends(balanced, size):
    splitter = RecursiveSplitter(
        chunk_size=size, chunk_overlap=0, balanced=balanced, sentence_boundaries=True
    )
    chunks = texts(splitter, QUOTED)
    assert len(chunks) > 1 and all(len(c) <= size for c in chunks)
    assert ends_inside_a_sentence(QUOTED, chunks) == []
    assert " ".join(chunks) == QUOTED
    default = RecursiveSplitter(chunk_size=size, chunk_overlap=0, balanced=balanced)
    assert ends_inside_a_sentence(QUOTED, texts(default, QUOTED))  # cut at ", " or "Dr. "


def test_a_sentence_longer_than_a_chunk_is_still_cut_at_the_separators():
    long_one = "Flutter, " * 30 + "ends here."
    text = f"Short one. {long_one} Short two."
    splitter = RecursiveSplitter(
        chunk_size=100, chunk_overlap=0, balanced=True, sentence_boundaries=True
    )
    chunks = texts(splitter, text)
    assert all(len(c) <= 100 for c in chunks) and " ".join(chunks) == text
    assert chunks[0].startswith("Short one.") and chunks[-1].endswith("Short two.")


def test_markdown_passes_sentence_boundaries_on_and_the_flag_is_checked():
    doc = Document(id="w.md", text="# Wings\n" + QUOTED)
    for flag in (True, False):
        splitter = MarkdownSplitter(
            chunk_size=200, chunk_overlap=0, balanced=True, sentence_boundaries=flag
        )
        bodies = [c.text.removeprefix("# Wings\n") for c in splitter.run(documents=[doc])["chunks"]]
        assert bool(ends_inside_a_sentence(QUOTED, bodies)) is not flag
    with pytest.raises(ConfigError, match="sentence_boundaries must be true or false, got 1"):
        MarkdownSplitter(sentence_boundaries=1)  # type: ignore[arg-type]
    text = """
components:
  splitter: {type: splitter.recursive, init_parameters: {sentence_boundaries: false}}
pipelines:
  ingest: {components: [splitter]}
"""
    loaded = PipelineFile.load("p.yaml", text=text)
    assert loaded.components["splitter"].sentence_boundaries is False
    assert PipelineFile.load("p.yaml", text=loaded.dump()).to_dict() == loaded.to_dict()
