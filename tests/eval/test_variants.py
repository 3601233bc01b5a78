"""Variants over the built component graph: overrides, store sharing, the answer chain's retriever."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.core.component import Component
from rag.core.registry import Registry
from rag.eval.config import load_eval_config
from rag.eval.runner import run_eval
from rag.eval.variants import (
    Variant,
    apply_parameters,
    ingest_components,
    ingest_key,
    variant_key,
    variant_pipeline_file,
)
from rag.pipelines.records import VECTOR_NEUTRAL_PARAMETERS
from tests.eval.helpers import PIPELINE, write_eval

BASE = """\
dataset:
  format: beir
  path: data
pipeline: pipeline.yaml
retriever: dense
k: 5
metrics: [ndcg@10]
"""


def _config(tmp_path: Path, grid: str, *, pipeline: str = PIPELINE, registry=None):
    return load_eval_config(write_eval(tmp_path, BASE + grid, pipeline=pipeline), registry=registry)


def _ingest_keys(config) -> dict[str, str]:
    return {v.name: ingest_key(config, v) for v in config.variants}


@pytest.mark.unit
def test_a_neutral_parameter_shares_the_store(tmp_path):
    config = _config(tmp_path, "grid:\n  embedder.batch_size: [4, 32]\n  embedder.device: [cpu]\n")
    assert {"batch_size", "device"} <= VECTOR_NEUTRAL_PARAMETERS
    keys = _ingest_keys(config)
    assert len(set(keys.values())) == 1, keys
    # the results still differ by variant (they are kept apart and resumed apart)
    assert len({variant_key(config, v) for v in config.variants}) == 2


@pytest.mark.unit
def test_every_neutral_parameter_of_a_component_is_left_out_of_the_ingest_key(tmp_path):
    """Eval uses ingest's one list: a parameter in it never splits the store."""
    config = _config(tmp_path, "")
    embedder = config.pipeline_file.components["embedder"]
    neutral = sorted(VECTOR_NEUTRAL_PARAMETERS & set(embedder.init_parameters))
    assert {"batch_size", "device", "progress"} <= set(neutral)
    changed = {
        "batch_size": 3,
        "device": "cuda:1",
        "progress": False,
        "fp16": True,
        "cache_dir": "x",
    }
    base_key = ingest_key(config, config.variants[0])
    for name in neutral:
        if name not in changed:
            continue
        variant = Variant(name=name, overrides={f"embedder.{name}": changed[name]})
        assert ingest_key(config, variant) == base_key, name


@pytest.mark.unit
def test_a_vector_parameter_gets_its_own_store(tmp_path):
    config = _config(
        tmp_path, "grid:\n  splitter.chunk_size: [32, 64]\n  embedder.batch_size: [4, 8]\n"
    )
    keys = _ingest_keys(config)
    assert keys["chunk_size=32 batch_size=4"] == keys["chunk_size=32 batch_size=8"]
    assert keys["chunk_size=64 batch_size=4"] == keys["chunk_size=64 batch_size=8"]
    assert keys["chunk_size=32 batch_size=4"] != keys["chunk_size=64 batch_size=4"]
    index = Variant(name="hnsw", overrides={"store.index": "hnsw"})
    model = Variant(name="model", overrides={"embedder.model": "another-model"})
    base_key = ingest_key(config, Variant(name="default"))
    assert ingest_key(config, index) != base_key  # the store's own settings count
    assert ingest_key(config, model) != base_key


@pytest.mark.unit
def test_a_retriever_choice_shares_the_store(tmp_path):
    config = _config(tmp_path, "grid:\n  retriever: [dense, bm25]\n  bm25.k1: [1.2, 0.9]\n")
    assert len(set(_ingest_keys(config).values())) == 1  # bm25 is not part of the ingestion


@pytest.mark.unit
def test_overrides_apply_to_the_built_components_and_keep_references(tmp_path):
    config = _config(tmp_path, "")
    base = config.pipeline_file
    changed = apply_parameters(base, {"splitter": {"chunk_size": 48}, "dense": {"k": 3}})
    assert changed.components["splitter"].init_parameters["chunk_size"] == 48
    assert base.components["splitter"].init_parameters["chunk_size"] == 64  # base untouched
    assert changed.components["dense"].init_parameters["store"] is changed.components["store"]
    assert changed.components["writer"].init_parameters["store"] is changed.components["store"]
    assert all(changed.components[n] is not base.components[n] for n in base.components)
    # a component given as the value is referred to by name, as '@name' in YAML would
    moved = apply_parameters(base, {"writer": {"store": base.components["store"]}})
    assert moved.components["writer"].init_parameters["store"] is moved.components["store"]
    assert ingest_components(changed, "ingest") == [
        "loader",
        "splitter",
        "embedder",
        "writer",
        "store",
    ]


@pytest.mark.unit
def test_variant_stores_are_placed_under_the_store_folder(tmp_path):
    config = _config(tmp_path, "grid:\n  splitter.chunk_size: [32, 64]\n")
    built = variant_pipeline_file(config, config.variants[0], store_root=tmp_path / "s")
    assert built.components["store"].init_parameters["path"] == str(tmp_path / "s" / "store")
    # the store location is not part of the ingest key: the same key wherever it is placed
    assert config.pipeline_file.components["store"].init_parameters["path"] == "unused"


class EchoChain(Component):
    """A chain that only holds its retriever (what the variant wiring is about)."""

    outputs = {"answer": dict}

    def __init__(self, *, retriever: Component) -> None:
        self.retriever = retriever

    def run(self, question: str) -> dict:
        return {"answer": {"text": question}}


@pytest.mark.unit
def test_the_answer_chain_retrieves_with_the_variant_retriever(tmp_path):
    pipeline = PIPELINE.replace(
        "pipelines:",
        '  chain:\n    type: chain.echo\n    init_parameters: {retriever: "@dense"}\npipelines:',
    )
    config = _config(
        tmp_path,
        "answers: {chain: chain}\ngrid:\n  retriever: [dense, bm25]\n",
        pipeline=pipeline,
        registry=Registry({"chain.echo": EchoChain}),
    )
    for variant in config.variants:
        built = variant_pipeline_file(config, variant, store_root=tmp_path / "s")
        chain_retriever = built.components["chain"].init_parameters["retriever"]
        assert chain_retriever is built.components[variant.retriever]


@pytest.mark.integration
def test_a_neutral_change_runs_on_one_ingested_store(tmp_path):
    path = write_eval(tmp_path, BASE + "grid:\n  embedder.batch_size: [4, 32]\n")
    result = run_eval(load_eval_config(path), out_dir=tmp_path / "out", progress=False)
    stores = list((tmp_path / "out" / "stores").iterdir())
    assert len(stores) == 1
    report = json.loads((stores[0] / "ingest.json").read_text())
    assert [v.ingest for v in result.variants] == [report, report]
    first, second = result.variants
    assert first.metrics == pytest.approx(second.metrics)  # batch size changes no vector
