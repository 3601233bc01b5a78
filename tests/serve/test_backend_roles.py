"""Backend finds what it serves with rag.core.roles, as the CLI does (no model loads here)."""

from __future__ import annotations

import pytest

from rag.core.errors import ConfigError
from rag.core.pipeline_file import PipelineFile
from rag.serve._backend import Backend, NotConfigured
from tests.core.test_roles import Chain, Embedder, Retriever, Store, Writer, pipeline

pytestmark = pytest.mark.unit


def test_each_endpoint_gets_the_component_its_pipeline_names():
    store, embedder = Store(), Embedder()
    retriever = Retriever(store=store)
    chain = Chain(retriever=retriever)
    backend = Backend(
        PipelineFile(
            pipelines={
                "ingest": pipeline("ingest", writer=Writer(store=store, embedder=embedder)),
                "search": pipeline("search", retriever=retriever),
                "ask": pipeline("ask", chain=chain),
            }
        )
    )
    assert backend.retriever is retriever and backend.chain is chain
    assert backend.store is store and backend.embedder is embedder  # held by the writer
    assert backend.role_problems == {}


def test_without_a_search_pipeline_the_chains_retriever_serves_search():
    retriever = Retriever(store=Store())
    chain = Chain(retriever=retriever)
    backend = Backend(PipelineFile(pipelines={"qa": pipeline("qa", chain=chain)}))
    assert backend.chain is chain and backend.retriever is retriever
    assert backend.store is retriever.store


def test_two_chains_and_no_ask_pipeline_leave_ask_unconfigured_saying_why():
    retriever = Retriever(store=Store())
    app = PipelineFile(
        pipelines={
            "search": pipeline("search", retriever=retriever),
            "a": pipeline("a", first=Chain(retriever=retriever)),
            "b": pipeline("b", second=Chain(retriever=retriever)),
        }
    )
    backend = Backend(app)  # search still serves
    assert backend.retriever is retriever and backend.chain is None
    with pytest.raises(NotConfigured) as caught:
        backend.require_chain()
    message = str(caught.value)
    assert "'first' (in pipeline a)" in message and "'second' (in pipeline b)" in message


def test_a_file_with_nothing_to_serve_is_refused():
    with pytest.raises(ConfigError, match="no retriever and no vector store"):
        Backend(PipelineFile(pipelines={"ask": pipeline("ask", embedder=Embedder())}))


def test_another_answer_style_is_built_once_from_the_chain():
    from rag.chains import RagChain
    from tests.chains.helpers import Script, scripted_generator

    retriever = Retriever(store=Store())
    chain = RagChain(retriever=retriever, generator=scripted_generator(Script()))
    backend = Backend(PipelineFile(pipelines={"ask": pipeline("ask", chain=chain)}))
    assert chain.answer_style == "sentences"  # a remote model's default
    assert backend.require_chain() is chain and backend.require_chain("sentences") is chain
    evidence = backend.require_chain("style.evidence")
    assert evidence.answer_style == "evidence" and evidence.generator is chain.generator
    assert evidence.retriever is retriever
    assert backend.require_chain("evidence") is evidence  # kept, not rebuilt per request
    extractive = backend.require_chain("extractive")  # quotes a span over a chat API
    assert extractive.answer_style == "extractive"
    assert extractive.style.search(chain.generator) == "quote"
    with pytest.raises(ConfigError, match="unknown answer_style 'bullets'"):
        backend.require_chain("bullets")
