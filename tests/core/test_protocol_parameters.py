"""A parameter typed by an extension-point Protocol takes a component, from Python and from YAML."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from rag.core.component import Component, build_component, takes_component
from rag.core.errors import ConfigError
from rag.core.pipeline_file import PipelineFile
from rag.core.protocols import Embedder, Retriever, VectorStore
from rag.core.registry import Registry

pytestmark = pytest.mark.unit


class CountingEmbedder(Component):
    """Plays the Embedder Protocol without deriving from it."""

    outputs = {"vector": np.ndarray}

    def __init__(self, *, dimension: int = 3) -> None:
        self._dimension = dimension

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.vstack([self.embed_query(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return np.full(self._dimension, float(len(text)), dtype=np.float32)

    def run(self, text: str) -> dict[str, Any]:
        return {"vector": self.embed_query(text)}


class Uses(Component):
    """Holds an embedder typed by the Protocol, and an optional one."""

    outputs = {"size": int}

    def __init__(self, *, embedder: Embedder, spare: Embedder | None = None) -> None:
        self.embedder = embedder
        self.spare = spare

    def run(self, text: str) -> dict[str, Any]:
        return {"size": int(self.embedder.embed_query(text)[0])}


def registry() -> Registry:
    registry = Registry()
    registry.register("toy.embedder", CountingEmbedder)
    registry.register("toy.uses", Uses)
    return registry


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (Embedder, True),
        (VectorStore | None, True),
        (Retriever, True),
        (Component, True),
        (CountingEmbedder, True),
        (int, False),
        (str | None, False),
        (dict[str, Any], False),
    ],
)
def test_takes_component(annotation: Any, expected: bool) -> None:
    assert takes_component(annotation) is expected


def test_a_class_implementing_a_protocol_is_not_itself_a_protocol() -> None:
    class Store(VectorStore):  # explicit subclass of the Protocol: a concrete class
        pass

    class Plain:
        pass

    assert takes_component(Store) is False  # not a Component, not a Protocol
    assert takes_component(Plain) is False


def test_a_protocol_typed_parameter_is_built_from_a_mapping() -> None:
    uses = build_component(
        Uses,
        {
            "embedder": {"type": "toy.embedder", "init_parameters": {"dimension": 2}},
            "spare": {"type": "toy.embedder"},
        },
        field="components.uses.init_parameters",
        registry=registry(),
    )
    assert isinstance(uses.embedder, CountingEmbedder)
    assert uses.embedder.dimension == 2
    assert isinstance(uses.spare, CountingEmbedder)
    assert uses.run(text="four")["size"] == 4


def test_a_protocol_typed_parameter_round_trips_through_yaml() -> None:
    text = """
components:
  embedder:
    type: toy.embedder
    init_parameters: {dimension: 4}
  uses:
    type: toy.uses
    init_parameters:
      embedder: "@embedder"
      spare: {type: toy.embedder}
pipelines:
  main:
    components: [uses]
"""
    app = PipelineFile.load("app.yaml", text=text, registry=registry())
    uses = app.components["uses"]
    assert uses.embedder is app.components["embedder"]
    again = PipelineFile.load("again.yaml", text=app.dump(), registry=registry())
    assert again.to_dict() == app.to_dict()


def test_a_wrong_type_name_under_a_protocol_parameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="toy.embeder"):
        build_component(
            Uses,
            {"embedder": {"type": "toy.embeder"}},
            field="components.uses.init_parameters",
            registry=registry(),
        )
