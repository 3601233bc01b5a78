"""The conformance suite itself: its expectations are right, and it fails broken stores."""

from __future__ import annotations

import pytest

from rag.connectors.stores.faiss import FaissStore
from rag.core.filters import Field, parse_filter
from rag.core.protocols import (
    Clearable,
    Closable,
    Enumerable,
    Fingerprinted,
    Flushable,
    ReportsStats,
)
from rag.testing import (
    FILTER_CASES,
    ClearableConformance,
    EnumerableConformance,
    FingerprintedConformance,
    StoreConformance,
    filter_corpus_chunks,
)
from rag.testing.store_conformance import declared_abilities, expected_ids
from tests.connectors.stores.abilities import AllAbilities, FaissAbilities

pytestmark = pytest.mark.unit


def test_hand_written_expectations_agree_with_matches():
    written = [case for case in FILTER_CASES if case.expected is not None]
    assert len(written) > 40
    for case in written:
        assert expected_ids(case) == case.expected, case.name


def test_cases_cover_every_operator():
    seen: set[str] = set()

    def walk(node):
        seen.add(type(node).__name__)
        if isinstance(node, Field):
            seen.add(node.op)
        for child in getattr(node, "children", ()):
            walk(child)
        if hasattr(node, "child"):
            walk(node.child)

    for case in FILTER_CASES:
        walk(parse_filter(case.filters))
    operators = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"}
    assert operators | {"And", "Or", "Not"} <= seen


class PostFilteringStore(FaissStore):
    """A classic bug: search the top k first, then drop what does not match."""

    def search(self, vector, k=10, filters=None):
        node = parse_filter(filters)
        from rag.core.filters import matches

        return [h for h in super().search(vector, k=k) if matches(node, h.chunk.metadata)]


class MissingMeansNoMatchStore(FaissStore):
    """Another: a field the chunk lacks never matches, even for $ne."""

    def count(self, filters=None):
        node = parse_filter(filters)
        if isinstance(node, Field) and node.op == "$ne":
            return sum(
                1 for c in filter_corpus_chunks() if node.name in c.metadata
            ) - super().count({node.name: node.value})
        return super().count(filters)


def test_the_suite_fails_a_post_filtering_store():
    suite = StoreConformance()
    with pytest.raises(AssertionError):
        suite.test_filtered_search_returns_exactly_k(PostFilteringStore())


def test_the_suite_fails_wrong_missing_field_semantics():
    suite = StoreConformance()
    store = MissingMeansNoMatchStore()
    store.write(filter_corpus_chunks())
    case = next(c for c in FILTER_CASES if c.name == "ne-string")
    with pytest.raises(AssertionError):
        suite.test_filter_case(store, case)
    suite.test_filter_case(store, next(c for c in FILTER_CASES if c.name == "eq-string"))


# -- the ability classes fail stores that break their promise ------------------------------------
class ConstantFingerprintStore(FaissStore):
    def fingerprint(self):
        return "always the same"


class RepeatingStore(FaissStore):
    def iter_chunks(self, batch_size=1000):
        chunks = list(super().iter_chunks(batch_size))
        yield from chunks
        yield from chunks[:1]


class ForgetfulClearStore(FaissStore):
    def clear(self):
        """Claims to clear, keeps everything."""


def test_the_declaration_check_fails_an_untested_ability():
    class OnlyCore(StoreConformance):
        pass

    with pytest.raises(AssertionError, match="FingerprintedConformance"):
        OnlyCore().test_declares_exactly_the_abilities_it_is_tested_for(FaissStore())


def test_the_declaration_check_fails_a_tested_but_undeclared_ability():
    class TooMany(StoreConformance, AllAbilities):
        pass

    with pytest.raises(AssertionError, match="OwnsRecordsLocation"):
        TooMany().test_declares_exactly_the_abilities_it_is_tested_for(FaissStore())

    class Right(StoreConformance, FaissAbilities):
        pass

    Right().test_declares_exactly_the_abilities_it_is_tested_for(FaissStore())


def test_declared_abilities_of_faiss():
    assert declared_abilities(FaissStore()) == {
        Flushable,
        Closable,
        Clearable,
        Enumerable,
        Fingerprinted,
        ReportsStats,
    }


def test_the_fingerprint_class_fails_a_constant_fingerprint():
    with pytest.raises(AssertionError):
        FingerprintedConformance().test_fingerprint_follows_the_contents(ConstantFingerprintStore())
    FingerprintedConformance().test_fingerprint_follows_the_contents(FaissStore())


def test_the_enumerable_class_fails_a_repeated_chunk():
    with pytest.raises(AssertionError):
        EnumerableConformance().test_iter_chunks_yields_every_chunk_once(RepeatingStore())


def test_the_clearable_class_fails_a_clear_that_keeps_chunks():
    with pytest.raises(AssertionError):
        ClearableConformance().test_clear_empties_and_stays_writable(ForgetfulClearStore())


def test_each_ability_class_checks_its_own_protocol():
    names = [n for n in dir(FaissAbilities) if n.startswith("test_store_is_")]
    assert sorted(names) == [
        "test_store_is_clearable",
        "test_store_is_closable",
        "test_store_is_enumerable",
        "test_store_is_fingerprinted",
        "test_store_is_flushable",
        "test_store_is_reportsstats",
    ]
    with pytest.raises(AssertionError, match="OwnsRecordsLocation"):
        AllAbilities().test_store_is_ownsrecordslocation(FaissStore())
