"""Shared fixtures. Models load once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2 embedder on CPU, warmed up once."""
    from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder

    model = SentenceTransformersEmbedder(model="all-MiniLM-L6-v2", device="cpu", batch_size=32)
    model.warm_up()
    return model


@pytest.fixture(scope="session")
def local_generator():
    """The packaged SmolLM2-135M-Instruct through llama.cpp, loaded once: greedy, seed 0,
    a 2048-token window and short answers so tests stay fast."""
    from rag.connectors.generators.llama_cpp import LlamaCppGenerator

    generator = LlamaCppGenerator(
        model="smollm2-135m-instruct", context_size=2048, threads=2, max_tokens=16, seed=0
    )
    generator.warm_up()
    return generator
