"""rag.core.roles: the one answer to "which component is the store / retriever / chain"."""

from __future__ import annotations

from typing import Any

import pytest

from rag.core.component import Component
from rag.core.errors import ConfigError
from rag.core.graph import Pipeline
from rag.core.pipeline_file import PipelineFile
from rag.core.roles import Role, find_role

pytestmark = pytest.mark.unit


class Store(Component):
    outputs = {"count": int}

    def run(self) -> dict[str, Any]:
        return {"count": 0}

    def write(self, chunks: Any, policy: Any = "upsert") -> int:
        return 0

    def search(self, vector: Any, k: int = 10, filters: Any = None) -> list[Any]:
        return []

    def delete(self, ids: Any = None, filters: Any = None) -> int:
        return 0

    def count(self, filters: Any = None) -> int:
        return 0

    def get(self, ids: Any) -> list[Any]:
        return []


class Embedder(Component):
    outputs = {"vectors": list}

    def run(self, texts: list) -> dict[str, Any]:
        return {"vectors": []}

    @property
    def dimension(self) -> int:
        raise AssertionError("finding the embedder must not load its model")

    def embed_documents(self, texts: Any) -> Any:
        return []

    def embed_query(self, text: str) -> Any:
        return []


class Retriever(Component):
    outputs = {"hits": list}

    def __init__(self, *, store: Component | None = None, parts: list | None = None) -> None:
        self.store = store
        self.parts = parts or []

    def run(self, query: str) -> dict[str, Any]:
        return {"hits": []}

    def retrieve(self, query: str, *, k: int | None = None, filters: Any = None) -> list[Any]:
        return []


class Chain(Component):
    outputs = {"answer": str}

    def __init__(self, *, retriever: Component) -> None:
        self.retriever = retriever

    def run(self, question: str) -> dict[str, Any]:
        return {"answer": ""}

    def ask(self, question: str, *, filters: Any = None, k: int | None = None) -> str:
        return ""

    def stream(self, question: str, *, filters: Any = None, k: int | None = None) -> Any:
        return iter(())


class Writer(Component):
    outputs = {"written": int}

    def __init__(self, *, store: Component, embedder: Component) -> None:
        self.store = store
        self.embedder = embedder

    def run(self, chunks: list) -> dict[str, Any]:
        return {"written": 0}


def pipeline(name: str, **components: Component) -> Pipeline:
    result = Pipeline(name)
    for component_name, component in components.items():
        result.add_component(component_name, component)
    return result


@pytest.fixture
def app() -> PipelineFile:
    """ingest [writer(store, embedder)], search [retriever(store)], ask [chain(retriever)]."""
    store, embedder = Store(), Embedder()
    retriever = Retriever(store=store)
    return PipelineFile(
        pipelines={
            "ingest": pipeline("ingest", writer=Writer(store=store, embedder=embedder)),
            "search": pipeline("search", retriever=retriever),
            "ask": pipeline("ask", chain=Chain(retriever=retriever)),
        }
    )


def test_each_role_is_found_in_its_preferred_pipeline(app):
    retriever = app.pipelines["search"].get_component("retriever")
    match = find_role(app, Role.RETRIEVER, prefer=["search"])
    assert (match.name, match.component, match.pipeline) == ("retriever", retriever, "search")
    assert find_role(app, Role.CHAIN, prefer=["ask"]).name == "chain"


def test_a_held_component_is_found_through_its_holder_without_reading_properties(app):
    store = find_role(app, Role.STORE, prefer=["ingest"])
    assert (store.name, store.pipeline) == ("writer.store", "ingest")
    embedder = find_role(app, Role.EMBEDDER, prefer=["ingest"])  # Embedder.dimension raises
    assert embedder.name == "writer.embedder"
    # the chain's retriever, when the ask pipeline is the only place looked at
    assert find_role(app, Role.RETRIEVER, pipeline="ask").component is (
        app.pipelines["search"].get_component("retriever")
    )


def test_a_named_pipeline_must_exist_and_have_the_role(app):
    with pytest.raises(
        ConfigError, match=r"no pipeline named 'serch'.*search.*ingest, search, ask"
    ):
        find_role(app, Role.RETRIEVER, pipeline="serch")
    with pytest.raises(ConfigError) as caught:
        find_role(app, Role.CHAIN, pipeline="search")
    message = str(caught.value)
    assert "pipeline 'search' has no component of type chain.rag" in message
    assert "'chain' (in pipeline ask)" in message  # where one is


def test_without_a_preferred_pipeline_the_file_decides(app):
    assert find_role(app, Role.CHAIN, prefer=["qa"]).pipeline is None
    assert find_role(app, Role.LOADER, prefer=["ingest"], required=False) is None
    with pytest.raises(ConfigError, match=r"no component of type loader\.\* in pipeline"):
        find_role(app, Role.LOADER, prefer=["ingest"])


def test_several_candidates_in_one_place_is_an_error_naming_them():
    one, two = Chain(retriever=Retriever()), Chain(retriever=Retriever())
    app = PipelineFile(pipelines={"a": pipeline("a", first=one), "b": pipeline("b", second=two)})
    with pytest.raises(ConfigError) as caught:
        find_role(app, Role.CHAIN, prefer=["ask"])
    message = str(caught.value)
    assert "2 components that can be the chain" in message
    assert "'first' (in pipeline a)" in message and "'second' (in pipeline b)" in message
    assert find_role(app, Role.CHAIN, pipeline="b").component is two


def test_a_candidate_held_by_another_does_not_count():
    dense, sparse = Retriever(), Retriever()
    fused = Retriever(parts=[dense, sparse])
    app = PipelineFile(components={"dense": dense, "sparse": sparse, "fused": fused})
    assert find_role(app, Role.RETRIEVER).name == "fused"


def test_a_single_pipeline_is_its_own_scope():
    search = pipeline("search", retriever=Retriever(store=Store()))
    assert find_role(search, Role.STORE).name == "retriever.store"
    assert find_role(search, Role.CHAIN, required=False) is None


def test_the_example_files_resolve_as_the_commands_use_them():
    hybrid = PipelineFile.load("examples/hybrid.yaml")
    assert find_role(hybrid, Role.RETRIEVER, prefer=["search"]).name == "hybrid"
    assert find_role(hybrid, Role.RETRIEVER).name == "hybrid"  # dense and bm25 are held by it
    assert find_role(hybrid, Role.STORE, prefer=["ingest"]).name == "store"
    qa = PipelineFile.load("examples/qa.yaml")
    assert find_role(qa, Role.CHAIN, prefer=["ask"]).name == "chain"
    assert find_role(qa, Role.EMBEDDER, prefer=["ingest"]).name == "embedder"
