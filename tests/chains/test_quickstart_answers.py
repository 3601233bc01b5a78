"""The quick start answers its own questions: examples/qa.yaml (hybrid retrieval, style.evidence,
the bundled models) over examples/corpus, asked the kind of questions a newcomer asks.

Each answer must hold the corpus's key fact, be copied from a cited context (grounded, with
offsets) and cite the file that states it; the misses known today are listed (KNOWN_MISSES) and
grow only with the reason beside them. The questions and the answers the chain gives are shown
in docs/how-to/answer-styles.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.core import PipelineFile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# (question, words the answer must hold, the source that states it)
QUESTIONS = [
    # the four of issue 19
    ("What does the parameter M control in an HNSW index?", ["links each node keeps"], "hnsw"),
    ("What is reciprocal rank fusion?", ["1 / (60 + rank)"], "bm25"),
    ("When should I use a flat FAISS index?", ["few million vectors"], "faiss"),
    ("What is BM25?", ["ranking function"], "bm25"),
    # what is / how does / when / why / who / which / how many
    ("How does an HNSW search find neighbours?", ["walks the graph"], "faiss"),
    ("Who led the Cranfield experiments?", ["Cyril Cleverdon"], "cranfield"),
    ("Which library did Meta AI Research write for similarity search?", ["FAISS"], "faiss"),
    ("How many dimensions do all-MiniLM-L6-v2 vectors have?", ["384"], "embeddings"),
    # the "Why retrieve first" section gives three reasons; any one answers
    (
        "Why retrieve passages before generating an answer?",
        [("training data", "fresh, private", "checkable")],
        "rag",
    ),
    ("What does the b parameter of BM25 control?", ["long documents"], "bm25"),
    ("What is the slowest step of ingestion?", ["Embedding is the slowest"], "embeddings"),
    ("How many queries did the second Cranfield experiment use?", ["225"], "cranfield"),
    ("What does efSearch control?", ["breadth of the search at query time"], "hnsw"),
    ("Why does ragline normalize vectors?", ["cosine"], "faiss"),
]


# Questions style.evidence still answers with the wrong sentence (measured 2026-12-07; the docs
# page shows these answers). HNSW walk: "A search walks the graph ..." does not name HNSW and
# scores below the sentence before it ("HNSW ... builds a graph ..."). Flat index: the weights
# fitted on both data sets (2026-12-07) put "A flat index compares the query with every stored
# vector." (logit -0.51) just above "It is exact ... fast enough for collections of up to a few
# million vectors" (-0.59), which the WikiQA-only weights chose.
KNOWN_MISSES = {
    "How does an HNSW search find neighbours?",
    "When should I use a flat FAISS index?",
}


def holds(text: str, facts: list) -> bool:
    """Whether ``text`` holds every fact (a tuple: any one of its alternatives)."""
    return all(
        any(f in text for f in fact) if isinstance(fact, tuple) else fact in text for fact in facts
    )


@pytest.fixture(scope="module")
def quickstart_chain(tmp_path_factory):
    """examples/qa.yaml as shipped (its index in a temporary folder, CPU), the whole example
    corpus ingested through ``rag ingest``."""
    root = tmp_path_factory.mktemp("quickstart")
    config = root / "qa.yaml"
    config.write_text(
        (EXAMPLES / "qa.yaml")
        .read_text()
        .replace("${RAG_INDEX_DIR:-.rag/example-index}", str(root / "index"))
        .replace("device: auto", "device: cpu")
    )
    result = CliRunner().invoke(
        app, ["ingest", str(EXAMPLES / "corpus"), "--config", str(config), "--json", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["chunks_written"] > 0
    chain = PipelineFile.load(config).pipelines["ask"].get_component("chain")
    assert chain.answer_style == "evidence"
    return chain


@pytest.mark.integration
@pytest.mark.slow
def test_the_quick_start_answers_its_own_questions(quickstart_chain):
    wrong = []
    for question, facts, source in QUESTIONS:
        answer = quickstart_chain.ask(question)
        cited = [c.source for c in answer.citations]
        ok = holds(answer.text, facts) and answer.grounded and any(source in s for s in cited)
        if not ok:
            wrong.append((question, answer.text, cited))
        for span in answer.spans:  # every piece is copied from the context it cites
            context = answer.contexts[span.index - 1]
            assert " ".join(context.text[span.start : span.end].split()) in answer.text
    unexpected = [w for w in wrong if w[0] not in KNOWN_MISSES]
    assert not unexpected, "\n".join(f"{q!r} -> {t!r} {c}" for q, t, c in unexpected)
    assert len(QUESTIONS) - len(wrong) >= 12  # of 14
