"""store.weaviate: the conformance suite against a live server (WEAVIATE_URL), and the filter
translation and object mapping as pure functions (no server needed)."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

pytest.importorskip(
    "weaviate", reason="weaviate-client is not installed: pip install 'ragline[weaviate]'"
)

from weaviate.collections.classes.filters import (
    _FilterAnd,
    _FilterNot,
    _FilterOr,
    _FilterValue,
    _Operator,
)

from rag.connectors.stores.weaviate import (
    BASE_PROPERTIES,
    WeaviateStore,
    chunk_from_object,
    object_properties,
    property_name,
    to_weaviate_filter,
)
from rag.core.documents import Chunk
from rag.core.errors import ConfigError
from rag.core.filters import parse_filter
from rag.testing import FILTER_CASES, StoreConformance, filter_corpus_chunks
from rag.testing.store_conformance import INJECTION, expected_ids
from tests.connectors.stores.abilities import WeaviateAbilities

WEAVIATE_URL = os.environ.get("WEAVIATE_URL")


@pytest.mark.integration
@pytest.mark.skipif(
    not WEAVIATE_URL,
    reason="needs a Weaviate server: set WEAVIATE_URL (and WEAVIATE_GRPC_PORT if not 50051); "
    "start one with: docker run -p 8080:8080 -p 50051:50051 "
    "cr.weaviate.io/semitechnologies/weaviate:1.33.0 (see docs/stores.md)",
)
class TestWeaviateServer(StoreConformance, WeaviateAbilities):
    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls):
        run = uuid.uuid4().hex[:8]
        made: list[WeaviateStore] = []

        def make(name):
            store = WeaviateStore(
                url=WEAVIATE_URL,
                grpc_port=int(os.environ.get("WEAVIATE_GRPC_PORT", "50051")),
                collection=f"RaglineTest_{run}_{name}",
            )
            made.append(store)
            return store

        yield make
        for store in made:  # drop the test collections
            store.warm_up()
            store._client.collections.delete(store.collection)
            store.close()


# -- pure functions -----------------------------------------------------------------------------
def _evaluate(expr, properties) -> bool:
    """Weaviate's documented filter semantics over one object's properties."""
    if expr is True or expr is False:
        return expr
    if isinstance(expr, _FilterNot):
        return not _evaluate(expr.filters[0], properties)
    if isinstance(expr, _FilterAnd):
        return all(_evaluate(f, properties) for f in expr.filters)
    if isinstance(expr, _FilterOr):
        return any(_evaluate(f, properties) for f in expr.filters)
    assert isinstance(expr, _FilterValue)
    stored = properties.get(expr.target)
    if stored is None:
        return False  # a missing property matches no comparison
    if expr.operator == _Operator.CONTAINS_ANY:
        values = stored if isinstance(stored, list) else [stored]
        return any(v == w and type(v) is type(w) for v in values for w in expr.value)
    compare = {
        _Operator.GREATER_THAN: lambda a, b: a > b,
        _Operator.GREATER_THAN_EQUAL: lambda a, b: a >= b,
        _Operator.LESS_THAN: lambda a, b: a < b,
        _Operator.LESS_THAN_EQUAL: lambda a, b: a <= b,
    }[expr.operator]
    assert type(stored) is type(expr.value), (expr.target, stored, expr.value)
    return compare(stored, expr.value)


@pytest.mark.unit
@pytest.mark.parametrize("case", FILTER_CASES, ids=[c.name for c in FILTER_CASES])
def test_translation_matches_the_grammar(case):
    chunks = filter_corpus_chunks()
    objects = {c.id: object_properties(c) for c in chunks}
    known = set(BASE_PROPERTIES).union(*objects.values())
    where = to_weaviate_filter(parse_filter(case.filters), known)
    got = {cid for cid, props in objects.items() if _evaluate(where, props)}
    assert got == expected_ids(case)


@pytest.mark.unit
def test_values_travel_as_typed_values_not_query_text():
    where = to_weaviate_filter(parse_filter({"lang": INJECTION}), {"mf_s_lang"})
    assert isinstance(where, _FilterValue)
    assert where.target == "mf_s_lang" and where.value == [INJECTION]
    assert where.operator == _Operator.CONTAINS_ANY


@pytest.mark.unit
def test_unknown_properties_fold_to_constants():
    known = set(BASE_PROPERTIES)
    assert to_weaviate_filter(parse_filter({"lang": "en"}), known) is False
    assert to_weaviate_filter(parse_filter({"lang": {"$ne": "en"}}), known) is True
    assert to_weaviate_filter(None, known) is True
    mixed = to_weaviate_filter(
        parse_filter({"$or": [{"lang": "en"}, {"x": {"$exists": True}}]}), known
    )
    assert isinstance(mixed, _FilterValue) and mixed.target == "present"


@pytest.mark.unit
def test_numbers_are_sent_as_floats():
    where = to_weaviate_filter(parse_filter({"year": {"$in": [2020, 2.5]}}), {"mf_n_year"})
    assert where.value == [2020.0, 2.5] and all(isinstance(v, float) for v in where.value)


@pytest.mark.unit
def test_object_mapping_round_trips():
    chunk = Chunk(
        id="c1",
        text="Grüße",
        metadata={
            "source": "a.md",
            "Year": 2020,
            "tags": ["b", "a"],
            "flag": True,
            "gone": None,
            "nested": {"k": [1]},
        },
    )
    props = object_properties(chunk)
    assert props["present"] == ["source", "Year", "tags", "flag", "nested"]
    assert props[property_name("n", "Year")] == [2020.0]
    assert props["mf_smin_tags"] == "a" and props["mf_smax_tags"] == "b"
    assert props["mf_b_flag"] == [True] and "mf_n_flag" not in props
    back = chunk_from_object(props, [1.0, 2.0])
    assert back.metadata == chunk.metadata and back.text == chunk.text
    np.testing.assert_array_equal(back.embedding, np.array([1.0, 2.0], dtype=np.float32))


@pytest.mark.unit
def test_property_names_are_valid_and_distinct():
    import re

    keys = ["lang", "Lang", "la ng", "名前", 'we"ird', "a_b", "ab", "x" * 500, "6c616e67"]
    names = [property_name("s", k) for k in keys]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[_A-Za-z][_0-9A-Za-z]{0,230}", n) for n in names)


@pytest.mark.unit
def test_configuration_is_checked_and_round_trips():
    with pytest.raises(ConfigError, match="capital letter"):
        WeaviateStore(collection="docs")
    with pytest.raises(ConfigError, match="http"):
        WeaviateStore(url="localhost:8080")
    store = WeaviateStore(url="https://w.example", collection="Docs", api_key="${WEAVIATE_API_KEY}")
    data = store.to_dict()
    assert data["init_parameters"]["api_key"] == "${WEAVIATE_API_KEY}"
    assert WeaviateStore.from_dict(data) == store
