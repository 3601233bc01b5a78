"""Tools: schemas from signatures and docstrings, argument checks, errors as messages."""

from __future__ import annotations

import enum
from typing import Literal

import pytest

from rag.chains.tools import (
    Tool,
    ToolArgumentError,
    ToolRegistry,
    calculator,
    run_tool_call,
    type_schema,
)
from rag.core import ConfigError
from rag.core.generation import ToolCall


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


def weather(city: str, days: int = 1, unit: Unit = Unit.CELSIUS, hourly: bool = False) -> dict:
    """Get the weather forecast for a city.

    Args:
        city: Name of the city, e.g. "Paris".
        days: How many days to forecast,
            counting today.
        unit: Temperature unit.
        hourly: Hourly values instead of daily ones.

    Returns:
        The forecast.
    """
    return {"city": city, "days": days}


def explode(x: int) -> int:
    """Always fails.

    Args:
        x: Ignored.
    """
    raise RuntimeError("boom")


@pytest.mark.unit
def test_schema_from_signature_and_google_docstring():
    schema = Tool.from_function(weather).schema()
    assert schema["type"] == "function"
    function = schema["function"]
    assert function["name"] == "weather"
    assert function["description"] == "Get the weather forecast for a city."
    params = function["parameters"]
    assert params["required"] == ["city"]
    assert params["additionalProperties"] is False
    assert params["properties"]["city"] == {
        "type": "string",
        "description": 'Name of the city, e.g. "Paris".',
    }
    assert params["properties"]["days"] == {
        "type": "integer",
        "description": "How many days to forecast, counting today.",
        "default": 1,
    }
    assert params["properties"]["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert params["properties"]["hourly"]["type"] == "boolean"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("hint", "schema"),
    [
        (float, {"type": "number"}),
        (list[str], {"type": "array", "items": {"type": "string"}}),
        (dict[str, int], {"type": "object"}),
        (Literal["a", "b"], {"enum": ["a", "b"]}),
        (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
    ],
)
def test_type_schemas(hint, schema):
    assert type_schema(hint) == schema


@pytest.mark.unit
def test_untyped_parameter_is_refused():
    def untyped(x):
        return x

    with pytest.raises(TypeError, match="parameter 'x' needs a type hint"):
        Tool.from_function(untyped)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "missing required argument(s) city"),
        ({"city": 3}, "argument 'city': expected string"),
        ({"city": "Paris", "days": "two"}, "argument 'days': expected integer"),
        ({"city": "Paris", "days": True}, "argument 'days': expected integer"),
        ({"city": "Paris", "unit": "kelvin"}, "expected one of ['celsius', 'fahrenheit']"),
        ({"city": "Paris", "country": "FR"}, "unknown argument(s) country"),
        ("Paris", "arguments must be a JSON object"),
    ],
)
def test_invalid_arguments_are_rejected_before_the_call(arguments, message):
    with pytest.raises(ToolArgumentError) as err:
        Tool.from_function(weather).validate(arguments)
    assert message in str(err.value)


@pytest.mark.unit
def test_run_tool_call_returns_results_and_errors_as_messages():
    tools = {t.name: t for t in (Tool.from_function(weather), Tool.from_function(explode))}
    ok = run_tool_call(tools, ToolCall(name="weather", arguments={"city": "Oslo"}, id="1"))
    assert ok.error is None and ok.content == '{"city": "Oslo", "days": 1}'
    bad = run_tool_call(tools, ToolCall(name="weather", arguments={"town": "Oslo"}))
    assert bad.error.startswith("invalid arguments for tool 'weather': unknown argument(s) town")
    assert bad.content == "error: " + bad.error
    raised = run_tool_call(tools, ToolCall(name="explode", arguments={"x": 1}))
    assert raised.error == "tool 'explode' failed: RuntimeError: boom"
    unknown = run_tool_call(tools, ToolCall(name="wether", arguments={}))
    assert unknown.error == (
        "unknown tool 'wether'. Did you mean 'weather'? available tools: weather, explode"
    )
    assert unknown.to_dict()["error"] == unknown.error


@pytest.mark.unit
def test_long_results_are_truncated():
    def long_text() -> str:
        """Long."""
        return "x" * 50

    outcome = run_tool_call(
        {"long_text": Tool.from_function(long_text)},
        ToolCall(name="long_text", arguments={}),
        max_result_chars=10,
    )
    assert outcome.content == "x" * 10 + " ... (truncated)"


@pytest.mark.unit
def test_calculator_evaluates_arithmetic_only():
    assert calculator("(2 + 3) * 4 - 2 ** 3") == 12
    with pytest.raises(ValueError, match="unsupported"):
        calculator("__import__('os').getcwd()")
    with pytest.raises(ValueError, match="exponent too large"):
        calculator("9 ** 999999")


@pytest.mark.unit
def test_registry_resolves_names_and_refuses_imports_unless_allowed(monkeypatch):
    registry = ToolRegistry()
    assert registry.resolve("calculator").call({"expression": "6 * 7"}) == 42
    with pytest.raises(ConfigError, match="Did you mean 'calculator'"):
        registry.resolve("calculater")
    monkeypatch.delenv("RAGLINE_ALLOW_IMPORTS", raising=False)
    with pytest.raises(ConfigError, match="RAGLINE_ALLOW_IMPORTS=1"):
        registry.resolve("tests.chains.test_tools:weather")
    assert registry.resolve("tests.chains.test_tools:weather", allow_imports=True).name == "weather"
    monkeypatch.setenv("RAGLINE_ALLOW_IMPORTS", "1")
    assert registry.resolve("tests.chains.test_tools.weather").name == "weather"
    registry.register(explode, name="fail_always")
    assert registry.resolve("fail_always").name == "fail_always"


@pytest.mark.unit
def test_a_pipeline_file_loaded_with_allow_imports_may_name_tools_by_import_path(
    tmp_path, monkeypatch
):
    from rag.core.pipeline import PipelineFile

    monkeypatch.delenv("RAGLINE_ALLOW_IMPORTS", raising=False)
    text = f"""
components:
  embedder: {{type: embedder.sentence_transformers, init_parameters: {{model: all-MiniLM-L6-v2}}}}
  store: {{type: store.faiss, init_parameters: {{path: "{tmp_path / "index"}"}}}}
  retriever: {{type: retriever.dense, init_parameters: {{embedder: "@embedder", store: "@store"}}}}
  generator:
    type: generator.openai
    init_parameters: {{model: m, base_url: "http://127.0.0.1:9/v1"}}
  chain:
    type: chain.rag
    init_parameters:
      retriever: "@retriever"
      generator: "@generator"
      tools: ["tests.chains.test_tools:weather"]
pipelines:
  ask: {{components: [chain]}}
"""
    path = tmp_path / "qa.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="allow_imports=True"):
        PipelineFile.load(path)
    app = PipelineFile.load(path, allow_imports=True)
    assert list(app.components["chain"]._tools) == ["weather"]
    with pytest.raises(ConfigError, match="allow_imports=True"):
        PipelineFile.load(path)  # allowed only for the load that asked for it
