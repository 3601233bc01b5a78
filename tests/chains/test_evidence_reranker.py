"""The cross-encoder that reorders ``style.evidence``'s best sentences."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.chains import EvidenceStyle
from rag.chains.styles.evidence_reranker import (
    ADAPTED_LAYERS,
    DEFAULT_RERANKER_FILE,
    SentenceReranker,
)
from rag.core import ConfigError

from .test_evidence import assert_grounded, evidence_chain

TEXTS = [
    "The Cato Institute is an American libertarian think tank in Washington, D.C. "
    "It was founded as the Charles Koch Foundation in 1974 by Ed Crane, Murray Rothbard, "
    "and Charles Koch.",
]


@pytest.mark.unit
def test_the_shipped_reranker_records_its_provenance_and_holds_every_adapter():
    reranker = SentenceReranker()
    for key in ("script", "date", "commit", "datasets", "seed", "model", "method"):
        assert reranker.provenance[key] not in (None, ""), key
    assert reranker.provenance["script"] == "benchmarks/fit_evidence_reranker.py"
    assert set(reranker.provenance["datasets"]) == {"wikiqa_train", "xquad_en_dev"}
    config = reranker.config
    assert config["base_model"] == "all-MiniLM-L6-v2"
    assert set(config["layers"]) <= set(ADAPTED_LAYERS)
    assert reranker.beta("embedding") > 0 and reranker.beta("embedding_factoid") > 0
    assert reranker.beta("lexical") == 0.0  # never used without an embedder
    with np.load(DEFAULT_RERANKER_FILE) as data:
        for layer in range(6):
            for name in config["layers"]:
                assert data[f"{layer}.{name}.down"].shape[0] == config["rank"]
                assert data[f"{layer}.{name}.up"].shape[1] == config["rank"]


@pytest.mark.integration
def test_the_reranker_scores_the_sentence_that_answers_above_the_one_that_defines(embedder):
    reranker = SentenceReranker()
    question_and_texts = [
        ("who created the cato institute", TEXTS[0].split(" It was ")),
        ("Who founded Acme?", ["Acme sells tools.", "Jane Roe founded Acme in 1998."]),
    ]
    for question, texts in question_and_texts:
        scores = reranker.scores(question, texts)
        assert scores.shape == (2,) and scores[1] > scores[0], (question, scores)
    assert reranker.scores("anything", []).shape == (0,)
    again = SentenceReranker()  # a style rebuilt per request loads no second copy
    again.warm_up()
    assert again._model is reranker._model
    long_question = "why " * 500  # longer than the model reads: truncated, not an error
    assert reranker.scores(long_question, ["A sentence."]).shape == (1,)


@pytest.mark.integration
def test_the_style_reorders_its_best_sentences_by_the_reranker(embedder, monkeypatch):
    question = "what is the population of berlin"
    facts = [
        "Berlin is the capital of Germany. It has 3.7 million inhabitants.",
        "Paris is the capital of France. It lies on the Seine.",
    ]
    plain, _ = evidence_chain(facts, embedder=embedder, min_score=0.001, rerank_top=0)
    first = plain.ask(question)
    calls = []

    def prefer_the_last(self, asked, texts):
        calls.append((asked, list(texts)))
        return np.arange(len(texts), dtype=np.float32) * 1000.0  # the last of the top wins

    monkeypatch.setattr(SentenceReranker, "scores", prefer_the_last)
    reranked, _ = evidence_chain(
        facts, embedder=embedder, min_score=0.001, rerank_top=2, rerank_questions="all"
    )
    second = reranked.ask(question)
    assert len(calls) == 1 and calls[0][0] == question and len(calls[0][1]) == 2
    assert second.text != first.text
    assert_grounded(second)
    plain.ask(question)  # rerank_top 0: the reranker is never asked
    assert len(calls) == 1


@pytest.mark.integration
def test_by_default_only_factoid_and_detailed_questions_are_reranked(embedder, monkeypatch):
    facts = [
        "Berlin is the capital of Germany. It has 3.7 million inhabitants.",
        "Paris is the capital of France. It lies on the Seine.",
    ]
    asked = []
    real_scores = SentenceReranker.scores

    def record(self, question, texts):  # the real cross-encoder, each call recorded
        asked.append(question)
        return real_scores(self, question, texts)

    monkeypatch.setattr(SentenceReranker, "scores", record)
    chain, _ = evidence_chain(facts, embedder=embedder, min_score=0.001)
    style = chain.style
    assert (style.rerank_top, style.rerank_questions) == (3, "factoid_or_detailed")
    chain.ask("What is the capital of France?")  # not who / when / where / how many
    chain.ask("Why is Berlin the capital?")
    assert asked == []
    assert "3.7 million" in chain.ask("How many inhabitants does Berlin have?").text
    assert "Seine" in chain.ask("Where does Paris lie?").text
    assert asked == ["How many inhabitants does Berlin have?", "Where does Paris lie?"]
    assert style.reranks("Who founded Berlin?") and not style.reranks("What is Berlin?")
    assert style.reranks("Which river runs through Paris?")  # "which" asks a factoid too
    detailed = "What river flows through the French capital city past the cathedral?"
    assert style.reranks(detailed)  # six or more content words: written from its passage
    assert not EvidenceStyle(rerank_questions="factoid").reranks(detailed)
    assert EvidenceStyle(rerank_questions="all").reranks("What is Berlin?")
    assert not EvidenceStyle(rerank_top=0).reranks("Who founded Berlin?")


@pytest.mark.unit
def test_without_an_embedder_nothing_is_reranked(monkeypatch):
    def fail(*_):
        raise AssertionError("the reranker must not run without an embedder")

    monkeypatch.setattr(SentenceReranker, "scores", fail)
    chain, _ = evidence_chain(rerank_top=3)
    assert chain.ask("What is BM25?").text.startswith("BM25 is a ranking function")


@pytest.mark.integration
def test_bad_reranker_settings_are_config_errors(tmp_path, embedder):
    with pytest.raises(ConfigError, match="rerank_top must be 0 .* got -1"):
        EvidenceStyle(rerank_top=-1)
    missing = tmp_path / "nope.npz"
    style = EvidenceStyle(embedder=embedder, reranker=str(missing), rerank_top=3)
    with pytest.raises(ConfigError, match=r"nope\.npz.*fit_evidence_reranker\.py.*rerank_top: 0"):
        style.warm_up()
    EvidenceStyle(embedder=embedder, reranker=str(missing), rerank_top=0).warm_up()  # not read
    broken = tmp_path / "broken.npz"
    np.savez(broken, config=np.array(json.dumps({"base_model": "all-MiniLM-L6-v2"})))
    with pytest.raises(ConfigError, match=r"broken\.npz.*provenance"):
        EvidenceStyle(embedder=embedder, reranker=str(broken), rerank_top=3).warm_up()
    with np.load(DEFAULT_RERANKER_FILE) as data:
        partial = {k: data[k] for k in data.files if not k.startswith("5.")}
    no_last_layer = tmp_path / "partial.npz"
    np.savez(no_last_layer, **partial)
    with pytest.raises(ConfigError, match=r"partial\.npz lacks the adapters 5\.\w+\.down"):
        EvidenceStyle(embedder=embedder, reranker=str(no_last_layer), rerank_top=3).warm_up()
    with pytest.raises(
        ConfigError, match="rerank_questions must be one of 'factoid', 'factoid_or_detailed', 'all'"
    ):
        EvidenceStyle(rerank_questions="some")


@pytest.mark.integration
def test_the_reranker_follows_the_embedders_device_and_names_a_bad_one(embedder):
    import torch

    from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder

    assert EvidenceStyle().reranker_on() == "cpu"  # no embedder to follow
    on_gpu = SentenceTransformersEmbedder(model="all-MiniLM-L6-v2", device="cuda:1")
    # the embedder's GPU where torch sees one; a CPU-only torch keeps it on the CPU
    expected = "cuda:1" if torch.cuda.is_available() else "cpu"
    assert EvidenceStyle(embedder=on_gpu).reranker_on() == expected  # nothing loaded yet
    assert EvidenceStyle(embedder=on_gpu, reranker_device="cpu").reranker_on() == "cpu"
    style = EvidenceStyle(embedder=embedder, reranker_device="cpu")
    style.warm_up()
    assert style.sentence_reranker().device == "cpu"
    assert EvidenceStyle.from_dict(style.to_dict()).reranker_device == "cpu"
    bad = EvidenceStyle(embedder=embedder, reranker_device="gpu")
    with pytest.raises(ConfigError, match=r"reranker_device.*'gpu'.*reranker_device: cpu"):
        bad.warm_up()
    EvidenceStyle(embedder=embedder, reranker_device="gpu", rerank_top=0).warm_up()  # not loaded
