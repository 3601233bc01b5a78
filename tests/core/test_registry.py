"""rag.core.registry: built-in names come from the distribution's entry points, not from core."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

import rag.core.registry as registry_module
from rag.core.errors import UnknownComponentError
from rag.core.registry import BUILTIN_COMPONENTS, ENTRY_POINT_GROUP, Registry

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_names_are_the_ones_pyproject_declares():
    table = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = table["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert declared == BUILTIN_COMPONENTS, (
        "the installed ragline declares other component names than pyproject.toml: the "
        "editable install is stale; run scripts/bootstrap.sh (or pip install -e .)"
    )
    assert len(declared) >= 30 and "store.faiss" in declared


def test_core_names_no_class_of_an_upper_layer():
    source = (ROOT / "rag" / "core" / "registry.py").read_text(encoding="utf-8")
    upper = re.findall(r"rag\.(?:connectors|pipelines|chains|eval|serve)\.\w+", source)
    assert upper == []


def test_an_unknown_name_lists_the_known_names_of_its_family():
    with pytest.raises(UnknownComponentError) as caught:
        Registry().resolve("store.fiass")
    message = str(caught.value)
    assert "Did you mean 'store.faiss'?" in message
    assert "Known: store.faiss, store.milvus" in message and "retriever.dense" not in message


def test_an_entry_given_to_the_registry_wins_over_a_declared_one():
    class Mine:
        pass

    assert Registry({"store.faiss": Mine}).resolve("store.faiss") is Mine
    assert Registry().name_of(Mine) is None


def test_without_an_installed_distribution_the_error_says_to_install_it(monkeypatch):
    monkeypatch.setattr(registry_module, "_declared", lambda: ({}, {}))
    with pytest.raises(UnknownComponentError, match=r"Known: \(none\).*pip install -e \."):
        Registry().resolve("store.faiss")


def test_a_class_registered_at_the_path_that_re_exports_it_keeps_its_short_name(monkeypatch):
    import sys
    import types

    class Store:
        pass

    Store.__module__ = "ragline_fake_pkg._store"  # defined in a private module of a package
    package = types.ModuleType("ragline_fake_pkg")
    package.Store = Store  # ... and re-exported by the package, the path the name points at
    monkeypatch.setitem(sys.modules, "ragline_fake_pkg", package)
    registry = Registry({"store.fake": "ragline_fake_pkg:Store"})
    assert registry.name_of(Store) == "store.fake"
    assert Registry({"store.fake": "ragline_not_imported:Store"}).name_of(Store) is None
