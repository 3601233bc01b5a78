"""retriever.bm25 over a real store: ranking, analyzer, filters, freshness, persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rag.connectors.retrievers.bm25 import BM25Retriever
from rag.connectors.stores.faiss import FaissStore
from rag.core.documents import Chunk
from rag.core.errors import ConfigError
from rag.core.pipeline import PipelineFile

pytest.importorskip("bm25s", reason="bm25s is not installed: pip install 'ragline[hybrid]'")

TEXTS = {
    "cats": ("Cats purr when they are happy; a purring cat is a calm cat.", "pets", 2019),
    "dogs": ("Dogs bark at strangers and run in the park.", "pets", 2021),
    "hnsw": ("HNSW builds a layered graph for approximate nearest neighbour search.", "ir", 2020),
    "bm25": ("BM25 ranks documents by term frequency and inverse document frequency.", "ir", 2022),
    "runner": ("The runner was running; she runs every morning.", "sport", 2023),
}


def _chunks():
    rng = np.random.default_rng(0)
    return [
        Chunk(
            id=name,
            text=text,
            metadata={"source": f"{name}.md", "topic": topic, "year": year},
            embedding=rng.normal(size=4).astype(np.float32),
        )
        for name, (text, topic, year) in TEXTS.items()
    ]


@pytest.fixture
def store():
    store = FaissStore()
    store.write(_chunks())
    return store


@pytest.mark.unit
def test_ranks_by_bm25_with_stemming_and_stopwords(store):
    retriever = BM25Retriever(store=store, k=3)
    hits = retriever.retrieve("purring cats")
    assert hits[0].id == "cats"
    assert [h.id for h in retriever.retrieve("runs")] == ["runner", "dogs"]  # run/running/runs
    assert retriever.retrieve("the and of") == []  # stopwords only
    assert retriever.retrieve("zeppelin") == []  # no term in the corpus
    assert retriever.tokenize(["The Running Cats"]) == [["run", "cat"]]


@pytest.mark.unit
def test_score_is_lucene_bm25(store):
    retriever = BM25Retriever(store=store, k1=1.2, b=0.75, stemmer=None, stopwords=None)
    tokens = retriever.tokenize([t for t, _, _ in TEXTS.values()])
    lengths = [len(t) for t in tokens]
    avgdl = sum(lengths) / len(lengths)
    df = sum("graph" in t for t in tokens)
    idf = math.log(1 + (len(tokens) - df + 0.5) / (df + 0.5))
    doc = list(TEXTS).index("hnsw")
    tf = tokens[doc].count("graph")
    # Lucene's BM25 (no (k1 + 1) factor in the numerator; the ranking is the same)
    expected = idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * lengths[doc] / avgdl))
    (hit,) = retriever.retrieve("graph")
    assert hit.id == "hnsw" and hit.score == pytest.approx(expected, rel=1e-5)


@pytest.mark.unit
def test_filters_apply_before_ranking(store):
    retriever = BM25Retriever(store=store, k=5, filters={"topic": {"$ne": "sport"}})
    assert [h.id for h in retriever.retrieve("runs")] == ["dogs"]
    hits = retriever.retrieve("search documents graph", filters={"year": {"$gte": 2021}})
    assert [h.id for h in hits] == ["bm25"]
    assert retriever.run(query="cat", filters={"topic": "ir"}) == {"hits": []}


@pytest.mark.unit
def test_follows_upserts_and_deletes(store):
    retriever = BM25Retriever(store=store, k=5)
    retriever.warm_up()
    assert retriever.retrieve("zeppelin") == []
    new = Chunk(
        id="zep",
        text="A zeppelin is an airship.",
        metadata={"source": "z.md"},
        embedding=np.ones(4, dtype=np.float32),
    )
    store.write([new])
    assert [h.id for h in retriever.retrieve("zeppelin")] == ["zep"]
    store.write(
        [
            Chunk(
                id="zep",
                text="Blimps float.",
                metadata={"source": "z.md"},
                embedding=np.ones(4, dtype=np.float32),
            )
        ]
    )
    assert retriever.retrieve("zeppelin") == []
    assert [h.chunk.text for h in retriever.retrieve("blimps")] == ["Blimps float."]
    store.delete(ids=["zep"])
    assert retriever.retrieve("blimps") == []
    assert retriever.retrieve_batch(["cats", "dogs bark"], k=1)[1][0].id == "dogs"


@pytest.mark.unit
def test_empty_store_and_validation():
    retriever = BM25Retriever(store=FaissStore())
    assert retriever.retrieve("anything") == []
    with pytest.raises(ValueError, match="k must be"):
        BM25Retriever(store=FaissStore(), k=0)
    with pytest.raises(ConfigError, match="unknown stemmer"):
        BM25Retriever(store=FaissStore(), stemmer="klingon").tokenize(["x"])


@pytest.mark.unit
def test_index_persists_beside_the_store(tmp_path, monkeypatch):
    store = FaissStore(path=str(tmp_path / "index"))
    store.write(_chunks())
    first = BM25Retriever(store=store, path=str(tmp_path / "bm25"))
    expected = [(h.id, h.score) for h in first.retrieve("cat graph")]
    assert (tmp_path / "bm25" / "state.json").exists()
    store.close()

    reopened = FaissStore(path=str(tmp_path / "index"))
    second = BM25Retriever(store=reopened, path=str(tmp_path / "bm25"))

    def no_rebuild(self, tokens):
        raise AssertionError("the saved index should have been loaded")

    monkeypatch.setattr(BM25Retriever, "_build_index", no_rebuild)
    assert [(h.id, h.score) for h in second.retrieve("cat graph")] == expected
    monkeypatch.undo()
    reopened.delete(ids=["cats"])  # the store changed: the saved index is stale, rebuilt
    third = BM25Retriever(store=reopened, path=str(tmp_path / "bm25"))
    assert "cats" not in {h.id for h in third.retrieve("cat graph")}


@pytest.mark.integration
def test_reads_a_milvus_store(tmp_path):
    pytest.importorskip("milvus_lite")
    from rag.connectors.stores.milvus import MilvusStore

    store = MilvusStore(uri=str(tmp_path / "m.db"), collection="bm25")
    store.write(_chunks())
    retriever = BM25Retriever(store=store, k=2)
    assert retriever.retrieve("purring cats")[0].id == "cats"
    store.delete(filters={"topic": "pets"})
    assert retriever.retrieve("purring cats") == []
    store.close()


@pytest.mark.unit
def test_round_trips_in_a_pipeline_file(tmp_path):
    text = f"""
components:
  store: {{type: store.faiss, init_parameters: {{path: {tmp_path}/idx}}}}
  bm25:
    type: retriever.bm25
    init_parameters: {{store: "@store", path: {tmp_path}/bm25, k: 3, k1: 1.2, b: 0.75}}
pipelines:
  search: {{components: [bm25]}}
"""
    app = PipelineFile.load("p.yaml", text=text)
    again = PipelineFile.load("p.yaml", text=app.dump())
    assert again.to_dict() == app.to_dict()
    bm25 = again.components["bm25"]
    assert bm25.store is again.components["store"] and bm25.k1 == 1.2


def _corpus(count: int, offset: int = 0) -> list[Chunk]:
    words = ["graph", "vector", "index", "search", "token", "stem", "cat", "dog", "river", "tree"]
    rng = np.random.default_rng(offset)
    return [
        Chunk(
            id=f"c{offset + i}",
            text=" ".join(rng.choice(words, size=8)) + f" unique{offset + i}",
            metadata={"source": f"{offset + i}.md", "part": (offset + i) % 3},
            embedding=np.ones(4, dtype=np.float32),
        )
        for i in range(count)
    ]


def _count_analyzed(monkeypatch) -> list[int]:
    """Record how many chunk texts each index refresh tokenizes."""
    calls: list[int] = []
    original = BM25Retriever._analyze

    def counting(self, texts):
        calls.append(len(texts))
        return original(self, texts)

    monkeypatch.setattr(BM25Retriever, "_analyze", counting)
    return calls


QUERIES = ["graph search", "cat tree unique3", "river stem token", "unique61 vector", "dog"]


def _ranked(retriever, filters=None):
    return [
        [(h.id, round(h.score, 5)) for h in retriever.retrieve(q, k=10, filters=filters)]
        for q in QUERIES
    ]


@pytest.mark.unit
def test_small_ingest_tokenizes_only_new_chunks(monkeypatch):
    store = FaissStore()
    store.write(_corpus(60))
    calls = _count_analyzed(monkeypatch)
    retriever = BM25Retriever(store=store)
    retriever.warm_up()
    assert calls == [60]
    _ranked(retriever)
    assert calls == [60]  # queries with no store change never refresh

    store.write(_corpus(2, offset=60))  # a small ingest
    changed = _corpus(1, offset=5)
    changed[0].text = "a rewritten chunk about rivers"
    store.write(changed)  # an upsert that changes one text
    store.delete(ids=["c7"])
    first = _ranked(retriever)
    assert calls == [60, 3]  # two new chunks and one changed text, not 61
    assert _ranked(retriever) == first and calls == [60, 3]

    # identical to an index built from scratch on the same store
    assert first == _ranked(BM25Retriever(store=store))
    assert any(hits for hits in first)

    calls.clear()
    (moved,) = store.get(["c9"])
    moved.metadata = {"source": "x.md"}
    store.write([moved])  # the same text under new metadata: nothing to tokenize
    assert [h.id for h in retriever.retrieve("unique9", filters={"source": "x.md"})] == ["c9"]
    assert calls == [0]


@pytest.mark.unit
def test_saved_tokens_make_the_next_process_incremental(tmp_path, monkeypatch):
    store = FaissStore(path=str(tmp_path / "index"))
    store.write(_corpus(30))
    BM25Retriever(store=store, path=str(tmp_path / "bm25")).warm_up()
    store.write(_corpus(2, offset=30))  # ingested by another process, say
    calls = _count_analyzed(monkeypatch)
    later = BM25Retriever(store=store, path=str(tmp_path / "bm25"))
    ranked = _ranked(later)
    assert calls == [2]
    assert ranked == _ranked(BM25Retriever(store=store))
    calls.clear()
    monkeypatch.setattr(BM25Retriever, "_build_index", lambda self, tokens: 1 / 0)
    assert _ranked(BM25Retriever(store=store, path=str(tmp_path / "bm25"))) == ranked
    assert calls == []  # the saved index is current: loaded, nothing tokenized or rebuilt


@pytest.mark.unit
@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
def test_scores_equal_a_plain_bm25s_index(method):
    import bm25s

    store = FaissStore()
    store.write(_corpus(40) + _chunks())
    retriever = BM25Retriever(store=store, method=method, k1=1.1, b=0.6)
    retriever.warm_up()
    store.write(_corpus(3, offset=40))
    store.delete(ids=["c2", "dogs"])
    texts = [c.text for c in store.iter_chunks()]
    plain = bm25s.BM25(k1=1.1, b=0.6, method=method)
    plain.index(retriever.tokenize(texts), show_progress=False)
    for query in [*QUERIES, "purring cats", "graph unique41"]:
        tokens = [t for t in retriever.tokenize([query])[0] if t in plain.vocab_dict]
        np.testing.assert_allclose(
            retriever.scores(query), plain.get_scores(tokens), rtol=1e-6, atol=0
        )


# -- contextual indexing --------------------------------------------------------------------------
def _titled_store():
    rng = np.random.default_rng(1)
    rows = [
        ("a1", "Kickoff was at 6:30 and the crowd was loud.", "Super Bowl 50"),
        ("a2", "Super Bowl 50\n\nThe game decided the NFL champion.", "Super Bowl 50"),
        ("b1", "The river floods every spring and the crowd leaves.", "Amazon rainforest"),
        ("c1", "No title here, only a crowd.", None),
    ]
    store = FaissStore()
    store.write(
        [
            Chunk(
                id=cid,
                text=text,
                metadata={"source": f"{cid}.jsonl", **({"title": title} if title else {})},
                embedding=rng.normal(size=4).astype(np.float32),
            )
            for cid, text, title in rows
        ]
    )
    return store


@pytest.mark.unit
def test_context_template_indexes_the_title_and_returns_the_chunk_text():
    store = _titled_store()
    plain = BM25Retriever(store=store)
    titled = BM25Retriever(store=store, context_template="{title}\n{text}")
    assert [h.id for h in plain.retrieve("kickoff")] == ["a1"]
    assert plain.retrieve("rainforest") == []  # only in the title
    hits = titled.retrieve("rainforest")
    assert [h.id for h in hits] == ["b1"]
    assert hits[0].chunk.text == "The river floods every spring and the crowd leaves."
    # a chunk that starts with its title is not given it twice; one without a title stays as is
    assert (
        titled.index_text(store.get(["a2"])[0])
        == "Super Bowl 50\n\nThe game decided the NFL champion."
    )
    assert titled.index_text(store.get(["c1"])[0]) == "No title here, only a crowd."
    assert titled.index_text(store.get(["a1"])[0]).startswith("Super Bowl 50\nKickoff")


@pytest.mark.unit
def test_changing_the_template_rebuilds_a_saved_index(tmp_path):
    store = _titled_store()
    path = str(tmp_path / "bm25")
    BM25Retriever(store=store, path=path).warm_up()
    titled = BM25Retriever(store=store, path=path, context_template="{title}\n{text}")
    assert [h.id for h in titled.retrieve("rainforest")] == ["b1"]  # not the saved plain index
    again = BM25Retriever(store=store, path=path, context_template="{title}\n{text}")
    assert again._load(again.store.fingerprint())  # the titled index was saved and is current
    assert [h.id for h in again.retrieve("rainforest")] == ["b1"]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("template", "message"),
    [("{title}", "no {text} field"), ("{title\n{text}", "not a valid template"), (3, "string")],
)
def test_bad_context_template_is_refused(template, message):
    with pytest.raises(ConfigError, match=message):
        BM25Retriever(store=FaissStore(), context_template=template)
