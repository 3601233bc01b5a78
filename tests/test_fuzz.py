"""Bounded property-based fuzzing (hypothesis): the YAML loader, the filter parser and the file
loaders either succeed or raise the named error; never anything else. A few seconds in all.

In the suite every run tries the same examples (``derandomize``), so a failure reproduces;
``RAG_FUZZ_EXAMPLES=5000`` runs fresh random examples for a deeper look.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.core.errors import ConfigError, FilterError, RagError
from rag.core.filters import FIELD_OPERATORS, LOGICAL_OPERATORS, matches, parse_filter
from rag.core.limits import loads_json
from rag.core.pipeline import LiteralSecretWarning, PipelineFile
from rag.core.registry import default_registry
from rag.core.yaml_io import read_yaml
from rag.pipelines.loaders import SUPPORTED_EXTENSIONS, FileLoader

pytestmark = pytest.mark.unit

# RAG_FUZZ_EXAMPLES=5000 explores further with fresh random examples (not in the suite).
EXPLORE = os.environ.get("RAG_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(EXPLORE or 150),
    deadline=None,
    derandomize=not EXPLORE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=20,
)

# YAML-ish text: fragments that exercise anchors, aliases, merges, flow and block styles, tags.
YAML_PIECES = [
    "components:",
    "pipelines:",
    "  a:",
    "  b:",
    "    type: store.faiss",
    "    type: loader.files",
    "    init_parameters:",
    "      path: x",
    "      chunk_size: 0",
    "&x",
    "*x",
    "<<: *x",
    "[",
    "]",
    "{",
    "}",
    ": ",
    "- ",
    "\n",
    "  ",
    "'",
    '"',
    "!!python/object:os.system",
    "!!binary",
    "${A}",
    "@a",
    "@@b",
    "---",
    "...",
    "#",
    "? ",
    "|",
    ">",
    "1e400",
    ".nan",
    "~",
    "&a [*a]",
    "0x1F",
]


@FUZZ
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=30).map("".join) | st.text(max_size=200))
def test_yaml_loader_succeeds_or_names_a_config_error(text: str) -> None:
    try:
        read_yaml("fuzz.yaml", text=text)
    except ConfigError as err:
        assert str(err).startswith("fuzz.yaml")


component_types = st.sampled_from(sorted(default_registry.names()))
params = st.dictionaries(
    st.sampled_from(
        [
            "path",
            "model",
            "chunk_size",
            "chunk_overlap",
            "device",
            "k",
            "store",
            "embedder",
            "policy",
            "index",
            "metric",
            "text_field",
            "batch_size",
            "dimension",
            "api_key",
            "url",
        ]
    ),
    json_like | st.sampled_from(["@a", "@b", "@nope", "${HOME}", "cpu", "flat"]),
    max_size=4,
)
pipeline_specs = st.fixed_dictionaries(
    {
        "components": st.dictionaries(
            st.sampled_from(["a", "b", "c"]),
            st.fixed_dictionaries({"type": component_types, "init_parameters": params}),
            min_size=1,
            max_size=3,
        ),
    }
)


@FUZZ
@given(pipeline_specs)
def test_pipeline_files_build_or_name_a_config_error(spec: dict[str, Any]) -> None:
    import yaml

    text = yaml.safe_dump(spec)
    try:
        with warnings.catch_warnings():
            # A literal api_key the fuzzer writes is warned about by design (the value never shown).
            warnings.simplefilter("ignore", LiteralSecretWarning)
            PipelineFile.load("fuzz.yaml", text=text)
    except ConfigError as err:
        assert "fuzz.yaml" in str(err)


filter_keys = st.sampled_from(
    ["source", "year", "lang", "", "a.b", *FIELD_OPERATORS, *LOGICAL_OPERATORS, "$bogus"]
)
filters = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(filter_keys, inner, max_size=3),
    ),
    max_leaves=15,
)
metadata = st.dictionaries(
    st.sampled_from(["source", "year", "lang", "tags"]), json_like, max_size=4
)


@FUZZ
@given(filters, metadata)
def test_filter_parser_succeeds_or_raises_filter_error(value: Any, meta: dict[str, Any]) -> None:
    try:
        node = parse_filter(value)
    except FilterError:
        return
    assert isinstance(matches(node, meta), bool)


@FUZZ
@given(st.text(max_size=300))
def test_json_limits_succeed_or_name_the_input(text: str) -> None:
    import json

    try:
        loads_json(text, where="fuzz")
    except json.JSONDecodeError:
        pass
    except RagError as err:
        assert str(err).startswith("fuzz")


@FUZZ
@given(
    st.sampled_from(SUPPORTED_EXTENSIONS),
    st.binary(max_size=400)
    | st.lists(st.text(max_size=40), max_size=6).map(lambda rows: "\n".join(rows).encode())
    | st.lists(json_like, max_size=4).map(
        lambda rows: "\n".join(__import__("json").dumps(r) for r in rows).encode()
    ),
)
def test_loaders_return_documents_or_per_source_errors(suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        result = FileLoader().run(sources=[str(path)])
    for document in result["documents"]:
        assert document.text.strip()
    for error in result["errors"]:
        assert error["source"].startswith(str(path)) and error["error"]
