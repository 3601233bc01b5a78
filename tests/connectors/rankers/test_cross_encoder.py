"""ranker.cross_encoder with a tiny CrossEncoder built here (random weights, no download)."""

from __future__ import annotations

import pytest

from rag.connectors.rankers.cross_encoder import CrossEncoderRanker
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError, InvalidInputError, ModelNotFoundError
from rag.core.pipeline import PipelineFile

WORDS = ["cat", "cats", "purr", "dog", "bark", "graph", "search", "vector", "what", "is", "the"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    st = pytest.importorskip("sentence_transformers")
    import torch

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-cross-encoder")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    try:  # transformers >= 5 takes the vocabulary itself
        tokenizer = transformers.BertTokenizer(vocab={t: i for i, t in enumerate(tokens)})
    except TypeError:
        vocab = directory / "vocab.txt"
        vocab.write_text("\n".join(tokens) + "\n")
        tokenizer = transformers.BertTokenizer(vocab_file=str(vocab))
    assert tokenizer("cats purr")["input_ids"][1:3] == [6, 7]  # real tokens, not [UNK]
    config = transformers.BertConfig(
        vocab_size=len(WORDS) + 5,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=1,
        initializer_range=0.3,  # larger random weights than BERT: clearly different scores
    )
    model = transformers.BertForSequenceClassification(config)
    model.save_pretrained(directory / "hf")
    tokenizer.save_pretrained(directory / "hf")
    encoder = st.CrossEncoder(str(directory / "hf"), device="cpu", num_labels=1)
    encoder.save(str(directory / "model"))
    return str(directory / "model"), encoder


def _hits():
    texts = ["the dog bark", "cats purr", "vector graph search", "what is the cat"]
    return [
        Hit(Chunk(id=f"h{i}", text=t, metadata={"source": f"{i}.md"}), 1.0 - i / 10)
        for i, t in enumerate(texts)
    ]


@pytest.mark.integration
def test_reranks_by_the_models_scores(tiny_model):
    path, reference = tiny_model
    hits = _hits()
    ranker = CrossEncoderRanker(model=path, device="cpu")
    ranked = ranker.rank("what is a cat", hits)
    expected = reference.predict([("what is a cat", h.chunk.text) for h in hits])
    order = sorted(range(len(hits)), key=lambda i: -float(expected[i]))
    assert [h.id for h in ranked] == [hits[i].id for i in order]
    assert [h.score for h in ranked] == pytest.approx([float(expected[i]) for i in order], abs=1e-5)
    # distinct scores, so the order means something
    assert len({round(h.score, 6) for h in ranked}) == 4
    assert hits[0].score == 1.0  # inputs are not mutated
    top = ranker.run(query="what is a cat", hits=hits, top_k=2)["hits"]
    assert [h.id for h in top] == [h.id for h in ranked[:2]]
    middle = (ranked[1].score + ranked[2].score) / 2
    threshold = CrossEncoderRanker(model=path, device="cpu", score_threshold=middle)
    assert len(threshold.rank("what is a cat", hits)) == 2
    assert ranker.rank("anything", []) == []
    # a per-call top_k of 0 or less is refused (it used to keep every hit), None keeps them all
    for bad in (0, -1, 1.5):
        with pytest.raises(InvalidInputError, match=r"top_k: must be a whole number"):
            ranker.rank("what is a cat", hits, top_k=bad)
    assert len(ranker.rank("what is a cat", hits, top_k=None)) == 4
    assert len(CrossEncoderRanker(model=path, device="cpu", top_k=1).rank("cat", hits)) == 1


@pytest.mark.unit
def test_missing_model_says_none_ships_as_a_package(tmp_path):
    ranker = CrossEncoderRanker(model=str(tmp_path / "nope"))
    with pytest.raises(ModelNotFoundError, match="No cross-encoder ships as a Python package"):
        ranker.warm_up()
    with pytest.raises(ConfigError, match="top_k"):
        CrossEncoderRanker(model="m", top_k=0)


@pytest.mark.unit
def test_pipeline_file_round_trip(tmp_path):
    text = f"""
components:
  store: {{type: store.faiss}}
  bm25: {{type: retriever.bm25, init_parameters: {{store: "@store", k: 20}}}}
  ranker: {{type: ranker.cross_encoder, init_parameters: {{model: {tmp_path}/m, top_k: 3}}}}
pipelines:
  search:
    components: [bm25, ranker]
    connections: ["bm25.hits -> ranker.hits"]
"""
    app = PipelineFile.load("p.yaml", text=text)
    assert PipelineFile.load("p.yaml", text=app.dump()).to_dict() == app.to_dict()
    assert app.pipeline("search").unconnected_inputs()["ranker"]["query"][1] is True
