"""Bounded YAML, JSON limits, secrets that stay references, located parameter errors."""

from __future__ import annotations

import json
import logging
import math
import warnings

import numpy as np
import pytest

from rag.core.component import Component
from rag.core.documents import Document
from rag.core.errors import (
    ConfigError,
    FilterError,
    NestingTooDeepError,
    NonFiniteNumberError,
    PipelineError,
    StoreUnavailableError,
)
from rag.core.filters import parse_filter
from rag.core.limits import MAX_JSON_DEPTH, check_finite, check_json_depth, json_depth, loads_json
from rag.core.pipeline import LiteralSecretWarning, Pipeline, PipelineFile
from rag.core.registry import Registry
from rag.core.secrets import EnvValue, RedactingFilter, looks_like_secret, redact_urls
from rag.core.yaml_io import MAX_YAML_NODES, read_yaml
from tests.core.toys import toy_registry

pytestmark = pytest.mark.unit


class Options(Component):
    """A component with a free-form mapping, a counted parameter and its own range check."""

    outputs = {"value": int}

    def __init__(self, *, extra_body: dict | None = None, size: int = 1, label: str = "") -> None:
        if size < 1:
            raise ConfigError(f"size must be at least 1, got {size}", field="size")
        self.extra_body = extra_body
        self.size = size
        self.label = label

    def run(self, value: int, k: int | None = None) -> dict:
        return {"value": value * self.size}


def registry() -> Registry:
    reg = toy_registry()
    reg.register("toy.options", Options)
    return reg


# -- YAML ----------------------------------------------------------------------------------------
def test_alias_expansion_is_capped():
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    with pytest.raises(ConfigError, match=f"more than {MAX_YAML_NODES} values") as err:
        read_yaml("laughs.yaml", text="\n".join(lines))
    assert err.value.file == "laughs.yaml"


def test_aliases_and_merge_keys_within_bounds_still_work():
    text = "base: &b {size: 2, label: x}\nuse:\n  <<: *b\n  label: y\nlist: [*b, *b]\n"
    data = read_yaml("ok.yaml", text=text).data
    assert data["use"] == {"size": 2, "label": "y"}
    assert data["list"] == [{"size": 2, "label": "x"}] * 2


def test_a_cyclic_alias_is_refused_with_its_line():
    with pytest.raises(ConfigError, match="cycle") as err:
        read_yaml("c.yaml", text="components:\n  x: &a {path: x, extra: *a}\n")
    assert (err.value.file, err.value.line) == ("c.yaml", 2)


def test_deep_nesting_is_refused_not_a_recursion_error():
    with pytest.raises(ConfigError, match="nested"):
        read_yaml("d.yaml", text="[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match="nested more than"):
        read_yaml("d.yaml", text="[" * 100 + "]" * 100)


def test_duplicate_key_names_file_and_first_line():
    with pytest.raises(ConfigError) as err:
        read_yaml("dup.yaml", text="a: 1\nb: 2\na: 3\n")
    assert str(err.value).startswith("dup.yaml:3")
    assert "first on line 1" in str(err.value)


# -- parameter errors ----------------------------------------------------------------------------
PIPE = """\
components:
  opts:
    type: toy.options
    init_parameters:
      label: x
      size: {size}
pipelines:
  main: [opts]
"""


def test_a_components_own_check_reports_the_keys_line():
    with pytest.raises(ConfigError) as err:
        PipelineFile.load("p.yaml", text=PIPE.format(size=0), registry=registry())
    assert err.value.line == 6
    assert err.value.field == "components.opts.init_parameters.size"


def test_a_value_of_the_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"'size' must be an integer, got 'sixty-four'") as err:
        PipelineFile.load("p.yaml", text=PIPE.format(size='"sixty-four"'), registry=registry())
    assert err.value.line == 6
    with pytest.raises(ConfigError, match="must be an integer, got True"):
        PipelineFile.load("p.yaml", text=PIPE.format(size="true"), registry=registry())


def test_run_checks_plain_input_types():
    pipe = Pipeline()
    pipe.add_component("opts", Options())
    with pytest.raises(PipelineError, match=r"input 'k' of 'opts' must be an integer or null"):
        pipe.run(value=1, k="ten")
    with pytest.raises(PipelineError, match="must be an integer, got inf"):
        pipe.run({"opts": {"value": math.inf}})
    assert pipe.run(value=2, k=3) == {"opts": {"value": 2}}


# -- secrets -------------------------------------------------------------------------------------
SECRET_PIPE = """\
components:
  opts:
    type: toy.options
    init_parameters:
      extra_body: {user: "${RAG_T_TOKEN}", nested: [{auth: "Bearer ${RAG_T_TOKEN}"}]}
      label: ${RAG_T_LABEL:-plain}
pipelines:
  main: [opts]
"""


def test_env_values_dump_as_references(monkeypatch):
    monkeypatch.setenv("RAG_T_TOKEN", "tok-123456789")
    app = PipelineFile.load("s.yaml", text=SECRET_PIPE, registry=registry())
    opts = app.components["opts"]
    assert opts.extra_body["user"] == "tok-123456789"  # used as the value
    dumped = app.dump()
    assert "tok-123456789" not in dumped
    assert "${RAG_T_TOKEN}" in dumped and "Bearer ${RAG_T_TOKEN}" in dumped
    assert "${RAG_T_LABEL:-plain}" in dumped
    again = PipelineFile.load("s.yaml", text=dumped, registry=registry())
    assert again.components["opts"].extra_body == opts.extra_body


def test_env_value_is_a_string_that_pickles_with_its_reference():
    import pickle

    value = EnvValue("v", reference="${X}")
    copy = pickle.loads(pickle.dumps(value))
    assert (copy, copy.reference, json.dumps(copy)) == ("v", "${X}", '"v"')


def test_literal_credentials_warn_without_echo():
    text = SECRET_PIPE.replace('"${RAG_T_TOKEN}"', "sk-abcdefghijklmnopqrstu", 1)
    text = text.replace("Bearer ${RAG_T_TOKEN}", "${RAG_T_TOKEN:-x}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PipelineFile.load("s.yaml", text=text, registry=registry())
    messages = [str(w.message) for w in caught if w.category is LiteralSecretWarning]
    assert len(messages) == 1
    assert "s.yaml:5" in messages[0] and "extra_body.user" in messages[0]
    assert "sk-abc" not in messages[0]


def test_a_literal_secret_parameter_is_refused_without_echo():
    text = (
        "components:\n  h:\n    type: toy.holder\n    init_parameters:\n"
        "      inner: {type: toy.add}\n      token: sk-abcdefghijklmnop\n"
    )
    with pytest.raises(ConfigError) as err:
        PipelineFile.load("h.yaml", text=text, registry=registry())
    assert err.value.line == 6 and "sk-abc" not in str(err.value)
    assert "environment variable" in str(err.value)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("api_key", "sk-abcdefghijklmnop", True),
        ("password", "pa55word!", True),
        ("note", "ghp_abcdefghijklmnopqrstu", True),
        ("api_key", "OPENAI_API_KEY", False),
        ("token", "${TOKEN}", False),
        ("model", "all-MiniLM-L6-v2", False),
        ("tokenizer", "all-MiniLM-L6-v2", False),
        ("max_tokens", "12-34-abc", False),
        ("Authorization", "Basic dXNlcjpwYXNz", True),
    ],
)
def test_looks_like_secret(name, value, expected):
    assert looks_like_secret(name, value) is expected


def test_url_credentials_are_masked_in_errors_and_logs(caplog):
    err = StoreUnavailableError("store.x", "http://u:pw@h:1", "url", "refused by http://u:pw@h:1")
    assert "pw" not in str(err) and "pw" not in repr(err) and "http://***@h:1" in str(err)
    assert "pw" not in str(ConfigError("see postgresql://me:pw@db/x"))
    assert redact_urls("no creds http://h/a@b") == "no creds http://h/a@b"
    logger = logging.getLogger("rag.test.redact")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="rag.test.redact"):
        logger.info("connecting to %s", "https://tok@example.com/v1")
    assert "tok@" not in caplog.text and "https://***@example.com/v1" in caplog.text


# -- JSON limits ---------------------------------------------------------------------------------
def test_loads_json_refuses_depth_before_parsing():
    with pytest.raises(NestingTooDeepError, match="nested 100000 levels"):
        loads_json("[" * 100_000 + "]" * 100_000, where="x")
    assert json_depth('["[[[[", {"a": [1]}]') == 3
    assert loads_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, where="x") is not None


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": [1, Infinity]}', '{"a": {"b": 1e400}}'])
def test_loads_json_refuses_non_finite(text):
    with pytest.raises(NonFiniteNumberError):
        loads_json(text, where="row")


def test_check_finite_names_the_path_and_numpy_scalars():
    with pytest.raises(NonFiniteNumberError) as err:
        check_finite({"a": [1, {"b": float("nan")}]}, where="meta")
    assert err.value.path == "a[1].b" and err.value.where == "meta"
    with pytest.raises(NonFiniteNumberError):
        check_finite({"s": np.float32("inf")}, where="meta")
    check_finite({"ok": [1.5, "NaN", None]}, where="meta")


def test_check_json_depth_is_iterative():
    value: list = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(NestingTooDeepError):
        check_json_depth(value, where="v")


def test_documents_refuse_non_finite_metadata():
    with pytest.raises(NonFiniteNumberError, match="score"):
        Document(id="a", text="x", metadata={"score": float("inf")})


def test_deep_filters_are_filter_errors():
    deep: dict = {"a": 1}
    for _ in range(1000):
        deep = {"$not": deep}
    with pytest.raises(FilterError, match="nested"):
        parse_filter(deep)
    with pytest.raises(FilterError, match="finite"):
        parse_filter({"score": {"$gt": float("nan")}})


def test_fingerprints_see_env_values_files_see_references(monkeypatch):
    monkeypatch.setenv("RAG_T_TOKEN", "one")
    opts = PipelineFile.load("s.yaml", text=SECRET_PIPE, registry=registry()).components["opts"]
    assert opts.to_dict()["init_parameters"]["extra_body"]["user"] == "${RAG_T_TOKEN}"
    assert opts.to_dict(resolved=True)["init_parameters"]["extra_body"]["user"] == "one"


def test_new_errors_cross_processes_intact():
    import pickle

    from rag.core.errors import StoreCorruptError

    corrupt = pickle.loads(pickle.dumps(StoreCorruptError("a.sqlite", "broken", "Delete it")))
    assert (corrupt.path, corrupt.repair, str(corrupt)) == (
        "a.sqlite",
        "Delete it",
        "a.sqlite: broken. Delete it",
    )
    deep = pickle.loads(pickle.dumps(NonFiniteNumberError("nan", where="row 3", path="a.b")))
    assert (type(deep), deep.where, deep.path, deep.message) == (
        NonFiniteNumberError,
        "row 3",
        "a.b",
        "nan",
    )
