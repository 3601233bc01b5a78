"""Tools: plain Python functions that a chain lets the model call.

A function with type hints and a Google-style docstring becomes a :class:`Tool`; its JSON schema
(OpenAI tools format) comes from the signature, and the descriptions from the docstring::

    def word_count(text: str, unique: bool = False) -> int:
        \"\"\"Count the words of a text.

        Args:
            text: The text to count.
            unique: Count each distinct word once.
        \"\"\"

Arguments the model sends are checked against the schema before the function runs; a bad call or
a function that raises becomes an error *message* for the model, never a crash of the chain.

In YAML, ``tools:`` lists names of a :class:`ToolRegistry` (``calculator``, ``current_date``, or
what an application registers); dotted import paths (``my_app.tools:lookup``) are accepted only
when imports are allowed (``RAGLINE_ALLOW_IMPORTS=1``), like component types.
"""

from __future__ import annotations

import ast
import datetime
import enum
import importlib
import inspect
import json
import logging
import operator
import re
import time
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from rag.chains.answer import Context
from rag.core.errors import ConfigError, RagError, did_you_mean
from rag.core.generation import GenerationResult, Message, ToolCall, Usage
from rag.core.registry import imports_allowed

_JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


class ToolArgumentError(RagError, ValueError):
    """The model called a tool with arguments that do not match its schema."""


def type_schema(annotation: Any) -> dict[str, Any]:
    """JSON schema of a type hint (str, int, float, bool, list[...], dict, Literal, Enum,
    Optional).

    >>> type_schema(list[int])
    {'type': 'array', 'items': {'type': 'integer'}}
    """
    if annotation in (inspect.Parameter.empty, Any):
        return {}
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}
    if annotation is type(None):
        return {"type": "null"}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        options = [type_schema(a) for a in args if a is not type(None)]
        schema = options[0] if len(options) == 1 else {"anyOf": options}
        if type(None) in args:
            return {"anyOf": [schema, {"type": "null"}]}
        return schema
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set):
        item = type_schema(args[0]) if args else {}
        return {"type": "array", "items": item} if item else {"type": "array"}
    if origin in (dict, Mapping) or annotation is dict:
        return {"type": "object"}
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        return {"enum": [member.value for member in annotation]}
    raise TypeError(f"type {annotation!r} cannot be expressed as a JSON schema for a tool")


def _docstring_parts(doc: str) -> tuple[str, dict[str, str]]:
    """Summary and ``Args:`` descriptions of a Google-style docstring."""
    doc = inspect.cleandoc(doc or "")
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    section = None
    current = None
    for line in doc.splitlines():
        header = re.fullmatch(r"(\w[\w ]*):\s*", line)
        if header and not line.startswith(" "):
            section = header.group(1).lower()
            current = None
            continue
        if section is None:
            summary_lines.append(line)
        elif section in ("args", "arguments", "parameters"):
            match = re.match(r"\s{2,}(\*{0,2}\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
            if match and len(line) - len(line.lstrip()) <= 4:
                current = match.group(1).lstrip("*")
                args[current] = match.group(2).strip()
            elif current and line.strip():
                args[current] = (args[current] + " " + line.strip()).strip()
    summary = " ".join(" ".join(summary_lines).split())
    return summary, args


@dataclass
class Tool:
    """A function the model may call, with its JSON schema.

    Args:
        name: The name the model uses.
        description: What the tool does (shown to the model).
        parameters: JSON schema of the arguments (an object).
        function: The callable, called with keyword arguments.

    Example:
        >>> def add(a: int, b: int = 1) -> int:
        ...     '''Add two numbers.
        ...
        ...     Args:
        ...         a: First number.
        ...         b: Second number.
        ...     '''
        ...     return a + b
        >>> tool = Tool.from_function(add)
        >>> tool.schema()["function"]["parameters"]["required"]
        ['a']
        >>> tool.call({"a": 2})
        3
    """

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any] = field(repr=False)

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Tool:
        """Build a tool from a type-hinted function and its Google-style docstring.

        Raises:
            TypeError: a parameter without a type hint, or with a type JSON cannot express.
        """
        tool_name = name or getattr(function, "__name__", "")  # a partial or callable has none
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tool_name):
            raise TypeError(f"tool name {tool_name!r} must match [A-Za-z0-9_-]{{1,64}}")
        summary, arg_docs = _docstring_parts(function.__doc__ or "")
        try:
            hints = typing.get_type_hints(function)
        except Exception as err:
            raise TypeError(f"tool '{tool_name}': cannot read type hints: {err}") from err
        properties: dict[str, Any] = {}
        required: list[str] = []
        for pname, param in inspect.signature(function).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if pname not in hints:
                raise TypeError(
                    f"tool '{tool_name}': parameter '{pname}' needs a type hint (the model "
                    "is shown a JSON schema built from the hints)"
                )
            schema = type_schema(hints[pname])
            if pname in arg_docs:
                schema["description"] = arg_docs[pname]
            if param.default is inspect.Parameter.empty:
                required.append(pname)
            elif param.default is None or isinstance(param.default, (str, int, float, bool)):
                schema["default"] = param.default
            properties[pname] = schema
        parameters: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
        return cls(
            name=tool_name,
            description=description or summary or tool_name,
            parameters=parameters,
            function=function,
        )

    def schema(self) -> dict[str, Any]:
        """The OpenAI tools-format entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def validate(self, arguments: Any) -> dict[str, Any]:
        """Check ``arguments`` against the schema.

        Raises:
            ToolArgumentError: naming the argument and what was expected.
        """
        if not isinstance(arguments, dict):
            raise ToolArgumentError(
                f"arguments must be a JSON object, got {type(arguments).__name__}"
            )
        if "__invalid_json__" in arguments:
            raise ToolArgumentError(
                f"arguments are not valid JSON: {arguments['__invalid_json__']!r}"
            )
        properties = self.parameters.get("properties", {})
        unknown = [a for a in arguments if a not in properties]
        if unknown:
            raise ToolArgumentError(
                f"unknown argument(s) {', '.join(unknown)}; "
                f"valid: {', '.join(properties) or '(none)'}"
            )
        missing = [a for a in self.parameters.get("required", []) if a not in arguments]
        if missing:
            raise ToolArgumentError(f"missing required argument(s) {', '.join(missing)}")
        for arg, value in arguments.items():
            problem = _check(value, properties[arg])
            if problem:
                raise ToolArgumentError(f"argument '{arg}': {problem}")
        return arguments

    def call(self, arguments: Any) -> Any:
        """Validate ``arguments`` and call the function with them."""
        return self.function(**self.validate(arguments))


def _check(value: Any, schema: dict[str, Any]) -> str | None:
    """Why ``value`` does not match ``schema`` (the subset :func:`type_schema` writes)."""
    if "anyOf" in schema:
        problems = [_check(value, option) for option in schema["anyOf"]]
        return None if any(p is None for p in problems) else problems[0]
    if "enum" in schema and value not in schema["enum"]:
        return f"expected one of {schema['enum']}, got {value!r}"
    expected = schema.get("type")
    checks: dict[str, Callable[[Any], bool]] = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
        "null": lambda v: v is None,
    }
    if expected in checks and not checks[expected](value):
        return f"expected {expected}, got {type(value).__name__} {value!r}"
    if expected == "array" and "items" in schema:
        for index, item in enumerate(value):
            problem = _check(item, schema["items"])
            if problem:
                return f"item {index}: {problem}"
    return None


@dataclass
class ToolOutcome:
    """What happened when one tool call ran: its result text or its error."""

    call: ToolCall
    content: str
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = self.call.to_dict()
        data["result" if self.error is None else "error"] = (
            self.content if self.error is None else self.error
        )
        data["seconds"] = round(self.seconds, 6)
        return data

    def message(self, call: ToolCall | None = None) -> dict[str, Any]:
        """The ``tool`` turn that hands this outcome back to the model."""
        call = call or self.call
        return {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": self.content}


def assistant_turn(result: GenerationResult) -> dict[str, Any]:
    """The ``assistant`` turn of a reply that asked for tool calls (OpenAI message format)."""
    return {
        "role": "assistant",
        "content": result.text or None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in result.tool_calls
        ],
    }


class ToolLoop:
    """The bounded tool loop of a chain: at most ``max_steps - 1`` calls that offer ``schemas``;
    each tool call's result (or its error, as text) goes back to the model. It ends when the
    model answers without a tool call (:attr:`reply`) or the steps run out (the answer call that
    follows offers no tool, so a chain always ends with an answer).

    Attributes:
        reply: The model's answer when it gave one in the loop (else ``None``).
        outcomes: Each tool call with its result or error.
        usage: Tokens used by the loop's calls.
        steps: Generator calls made.
        hit_max_steps: The last allowed call still asked for tools.
    """

    def __init__(
        self,
        generator: Any,
        tools: Mapping[str, Tool],
        schemas: list[dict[str, Any]] | None,
        *,
        max_steps: int,
    ) -> None:
        self.generator, self.tools, self.schemas = generator, tools, schemas
        self.max_steps = max_steps
        self.reply: GenerationResult | None = None
        self.outcomes: list[dict[str, Any]] = []
        self.usage = Usage()
        self.steps = 0
        self.hit_max_steps = False

    def run(
        self, messages: list[Message], *, tracing: Any, root: Any, timings: dict[str, float]
    ) -> list[Message]:
        """Run the loop from ``messages``; the messages with the tool turns added."""
        while self.schemas and self.steps < self.max_steps - 1:
            self.steps += 1
            mark = time.perf_counter()
            with tracing.span(
                "ragline.generate", {"ragline.step": self.steps}, parent=root
            ) as span:
                result = self.generator.generate(messages, tools=self.schemas)
                span.set_attributes(usage_attributes(result.usage))
            timings["generate"] += time.perf_counter() - mark
            self.usage = Usage(
                self.usage.prompt_tokens + result.usage.prompt_tokens,
                self.usage.completion_tokens + result.usage.completion_tokens,
            )
            if not result.tool_calls:
                self.reply = result  # the style may finish this reply or answer afresh
                return messages
            mark = time.perf_counter()
            messages = [*messages, assistant_turn(result)]
            for call in result.tool_calls:
                with tracing.span(
                    "ragline.tool_call", {"ragline.tool": call.name}, parent=root
                ) as tool_span:
                    outcome = run_tool_call(self.tools, call)
                    if outcome.error:
                        tool_span.set_attribute("ragline.tool_error", outcome.error)
                self.outcomes.append(outcome.to_dict())
                messages.append(outcome.message(call))
            timings["tools"] += time.perf_counter() - mark
        self.hit_max_steps = bool(self.schemas) and self.steps > 0
        return messages


def usage_attributes(usage: Usage) -> dict[str, int]:
    """Token counts under the OpenTelemetry GenAI semantic-convention names."""
    return {
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
    }


RETRIEVAL_TOOL = "search_documents"
"""The name of the retriever when it is offered as a tool (``retrieval_tool: true``)."""


def retrieval_tool(
    retriever: Any,
    contexts: list[Context],
    *,
    k: int,
    filters: dict[str, Any] | None,
    render: Callable[[Context], str],
) -> Tool:
    """The retriever as the ``search_documents`` tool: passages it finds join ``contexts``
    (new ones get the next numbers, so they can be cited) and are returned as ``render`` writes
    them."""

    def search_documents(query: str) -> str:
        """Search the document collection; returns numbered passages to cite.

        Args:
            query: What to search for.
        """
        by_id = {c.id: c for c in contexts}
        lines = []
        for hit in retriever.retrieve(query, k=k, filters=filters):
            context = by_id.get(hit.chunk.id)
            if context is None:
                context = Context.from_hit(len(contexts) + 1, hit)
                contexts.append(context)
                by_id[context.id] = context
            lines.append(render(context))
        return "\n\n".join(lines) or "no passages found"

    return Tool.from_function(search_documents)


def warn_unused_tools(
    style: str, names: list[str], mcp_servers: int, retrieve_first: bool = True
) -> None:
    """Log that ``style`` (one that answers from the contexts alone) offers the model none of
    the chain's tools ``names`` nor those of its ``mcp_servers``, and, without
    ``retrieve_first``, that it has nothing to read."""
    logger = logging.getLogger("rag.chains")
    if not retrieve_first:
        logger.warning(
            "chain.rag: retrieve_first is false, and style.%s calls no model that could search, "
            'so it reads no context and answers "I don\'t know."; set retrieve_first: true or '
            "use a generating style (answer_style: style.sentences)",
            style,
        )
    unused = names + [f"the tools of {mcp_servers} MCP server(s)"] * bool(mcp_servers)
    if unused:
        logger.warning(
            "chain.rag: style.%s answers from the retrieved contexts and calls no model, so %s "
            "will not be offered; use a generating style (answer_style: style.sentences, or "
            "rag ask --style sentences) to let the model call them",
            style,
            ", ".join(unused),
        )


def tool_reference(tool: str | Callable[..., Any] | Tool) -> str:
    """How a tool is written in YAML: its registered name or ``module:qualname``."""
    if isinstance(tool, str):
        return tool
    function = tool.function if isinstance(tool, Tool) else tool
    return f"{function.__module__}:{function.__qualname__}"


def run_tool_call(
    tools: Mapping[str, Tool], call: ToolCall, *, max_result_chars: int = 4000
) -> ToolOutcome:
    """Run one call; an unknown tool, bad arguments or an exception become an error message.

    Example:
        >>> outcome = run_tool_call({}, ToolCall(name="nope", arguments={}))
        >>> outcome.error
        "unknown tool 'nope'; available tools: (none)"
    """
    import time

    start = time.perf_counter()
    tool = tools.get(call.name)
    if tool is None:
        error = (
            f"unknown tool '{call.name}';{did_you_mean(call.name, tools)} "
            f"available tools: {', '.join(tools) or '(none)'}"
        ).replace("; Did", ". Did")
        return ToolOutcome(call, f"error: {error}", error, time.perf_counter() - start)
    try:
        result = tool.call(call.arguments)
    except ToolArgumentError as err:
        error = f"invalid arguments for tool '{call.name}': {err}"
    except Exception as err:  # a tool's failure is reported to the model, not raised
        error = f"tool '{call.name}' failed: {type(err).__name__}: {err}"
    else:
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        if len(text) > max_result_chars:
            text = text[:max_result_chars] + " ... (truncated)"
        return ToolOutcome(call, text, None, time.perf_counter() - start)
    return ToolOutcome(call, f"error: {error}", error, time.perf_counter() - start)


# -- built-in tools ---------------------------------------------------------------------------
_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def calculator(expression: str) -> float:
    """Evaluate an arithmetic expression (+, -, *, /, //, %, ** and parentheses).

    Args:
        expression: The expression, for example "(2 + 3) * 4".
    """

    def evaluate(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return evaluate(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = evaluate(node.left), evaluate(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 100:
                raise ValueError("exponent too large")
            return _OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](evaluate(node.operand))
        raise ValueError(f"unsupported expression element: {type(node).__name__}")

    return evaluate(ast.parse(expression, mode="eval"))


def current_date() -> str:
    """Today's date in ISO format (YYYY-MM-DD)."""
    return datetime.date.today().isoformat()


class ToolRegistry:
    """Names YAML may use in a chain's ``tools:`` list.

    Example:
        >>> registry = ToolRegistry()
        >>> registry.resolve("calculator").call({"expression": "2 * 21"})
        42
    """

    BUILTINS: dict[str, Callable[..., Any]] = {
        "calculator": calculator,
        "current_date": current_date,
    }

    def __init__(self, tools: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self._tools: dict[str, Callable[..., Any]] = dict(self.BUILTINS)
        self._tools.update(tools or {})

    def register(self, function: Callable[..., Any], *, name: str | None = None) -> None:
        """Make ``function`` available under ``name`` (default: its ``__name__``)."""
        self._tools[name or function.__name__] = function

    def names(self) -> list[str]:
        return sorted(self._tools)

    def resolve(
        self, spec: str | Callable[..., Any] | Tool, *, allow_imports: bool = False
    ) -> Tool:
        """A :class:`Tool` for a registered name, a callable, or (when allowed) an import path.

        Raises:
            ConfigError: an unknown name (with the closest known names), or an import path when
                imports are not allowed.
        """
        if isinstance(spec, Tool):
            return spec
        if callable(spec):
            return Tool.from_function(spec)
        if spec in self._tools:
            return Tool.from_function(self._tools[spec], name=spec)
        allowed = allow_imports or imports_allowed()
        if ":" in spec or "." in spec:
            if not allowed:
                raise ConfigError(
                    f"tool '{spec}' looks like an import path; importing functions named in YAML "
                    "is refused by default. Register the function on a ToolRegistry, or load the "
                    "file with allow_imports=True (CLI: RAGLINE_ALLOW_IMPORTS=1) if you trust it"
                )
            module_name, _, attr = spec.partition(":") if ":" in spec else spec.rpartition(".")
            try:
                function = getattr(importlib.import_module(module_name), attr)  # "module:function"
            except (ImportError, AttributeError) as err:
                raise ConfigError(f"cannot import tool '{spec}': {err}") from err
            return Tool.from_function(function)
        raise ConfigError(
            f"unknown tool '{spec}'.{did_you_mean(spec, self._tools)} "
            f"Known tools: {', '.join(self.names())}"
        )


default_tools = ToolRegistry()
"""The tool names a chain resolves unless it is given another registry."""
