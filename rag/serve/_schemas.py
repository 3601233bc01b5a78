"""Request and response bodies of the HTTP API (pydantic models, unknown fields refused).

Every request model forbids fields it does not know (``extra="forbid"``), so a typo such as
``"filter"`` for ``"filters"`` is a 422 that names the field instead of a silently ignored option.
Filters are validated with the one filter grammar (:func:`rag.core.filters.parse_filter`).

The published OpenAPI schema is what the server enforces: types are strict (``"stream": 0`` is
not a boolean, ``"k": "5"`` not an integer), texts that must hold something have a pattern that
says so, metadata and filters refuse NaN and infinities and nesting past
:data:`rag.core.limits.MAX_JSON_DEPTH` (JSON has no such numbers; an answer could not carry them).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from rag.core.filters import parse_filter
from rag.core.limits import MAX_JSON_DEPTH, check_finite

MAX_QUERY_CHARS = 4_000
MAX_K = 100
MAX_DOCUMENTS = 1_000
MAX_DOCUMENT_CHARS = 1_000_000
MAX_IDS = 10_000
MAX_PATHS = 100


NOT_BLANK = r"\S"
"""Pattern of texts that must hold a non-space character (the same regex engine checks it)."""


class StrictModel(BaseModel):
    """A request body: unknown fields refused, types strict, no NaN or infinity."""

    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, regex_engine="python-re"
    )


def _check_json(value: Any, info: ValidationInfo) -> Any:
    # NonFiniteNumberError and NestingTooDeepError are ValueErrors: reported on the field
    check_finite(value, where=info.field_name or "value", max_depth=MAX_JSON_DEPTH)
    return value


def check_filters(value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
    """A field validator: ``value`` is finite, shallow enough and in the filter grammar."""
    _check_json(value, info)
    parse_filter(value)  # FilterError is a ValueError: pydantic reports it on the field
    _check_nesting(value)
    return value


def check_answer_style(value: str | None) -> str | None:
    """A field validator: ``value`` names a registered answer style (``style.`` optional)."""
    if value is None:
        return None
    from rag.chains.styles import style_class
    from rag.core.errors import ConfigError

    try:
        return style_class(value).name
    except ConfigError as err:  # pydantic reports a ValueError on the field
        raise ValueError(err.message) from None


def _whole_number(value: Any) -> Any:
    # JSON Schema's "integer" holds 5.0 as well as 5; a text or a boolean is no integer
    if isinstance(value, (str, bool)):
        raise ValueError("Input should be a valid integer")
    return value


# Integers as JSON Schema has them: 5 or 5.0, never "5", true or 5.5 (the bounds sit inside the
# Annotated so that the schema says "minimum"/"maximum").
Integer = Annotated[int, BeforeValidator(_whole_number), Field(strict=False)]
TopK = Annotated[int, Field(strict=False, ge=1, le=MAX_K), BeforeValidator(_whole_number)]
Positive = Annotated[int, Field(strict=False, ge=1), BeforeValidator(_whole_number)]
OnlyOne = Annotated[int, Field(strict=False, ge=1, le=1), BeforeValidator(_whole_number)]

MAX_FILTER_NESTING = 4
"""Levels of ``$and``/``$or``/``$not`` an API filter may nest (the top level is 1).

The published schema spells each level out (a self-referencing schema makes schema-driven
fuzzers loop), so the server holds API filters to the same depth; nobody writes deeper ones."""

_SCALAR = {"type": ["string", "number", "boolean"]}


def _filter_level(level: int) -> dict[str, Any]:
    name = "Filter" if level == 1 else f"Filter{level}"
    schema: dict[str, Any] = {
        "title": name,
        "description": (
            "The filter grammar (rag.core.filters): field conditions, and $and / $or / $not "
            f"over filters, nested at most {MAX_FILTER_NESTING} levels."
        ),
        "type": "object",
        "minProperties": 1,
        "patternProperties": {
            "^[^$]": {"anyOf": [_SCALAR, {"$ref": "#/components/schemas/FilterCondition"}]}
        },
        "additionalProperties": False,
    }
    if level < MAX_FILTER_NESTING:
        child = {"$ref": f"#/components/schemas/Filter{level + 1}"}
        schema["properties"] = {
            "$and": {"type": "array", "minItems": 1, "items": child},
            "$or": {"type": "array", "minItems": 1, "items": child},
            "$not": child,
        }
    return schema


FILTER_SCHEMAS: dict[str, Any] = {
    **{
        ("Filter" if level == 1 else f"Filter{level}"): _filter_level(level)
        for level in range(1, MAX_FILTER_NESTING + 1)
    },
    "FilterCondition": {
        "title": "FilterCondition",
        "description": "Operators on one field; a bare value means $eq.",
        "type": "object",
        "minProperties": 1,
        "properties": {
            "$eq": _SCALAR,
            "$ne": _SCALAR,
            "$gt": {"type": ["string", "number"]},
            "$gte": {"type": ["string", "number"]},
            "$lt": {"type": ["string", "number"]},
            "$lte": {"type": ["string", "number"]},
            "$in": {"type": "array", "items": _SCALAR},
            "$nin": {"type": "array", "items": _SCALAR},
            "$exists": {"type": "boolean"},
            "$not": {"$ref": "#/components/schemas/FilterCondition"},
        },
        "additionalProperties": False,
    },
}
"""The filter grammar as JSON Schema, published under ``components/schemas`` of the OpenAPI."""


def _check_nesting(filters: Any, level: int = 1) -> None:
    if not isinstance(filters, dict):
        return
    for key, value in filters.items():
        if key not in ("$and", "$or", "$not"):
            continue
        if level >= MAX_FILTER_NESTING:
            raise ValueError(
                f"'{key}' nested more than {MAX_FILTER_NESTING} levels deep; API filters nest "
                f"$and / $or / $not at most {MAX_FILTER_NESTING} levels. Flatten the filter"
            )
        for child in value if isinstance(value, list) else [value]:
            _check_nesting(child, level + 1)


FILTERS_MARK = "x-ragline-filters"
"""Marks a filters field in a model's JSON Schema; :func:`publish_filter_schemas` replaces the
mark with the grammar (pydantic cannot hold a ``$ref`` to a schema it did not make)."""

Filters = Annotated[dict[str, Any] | None, WithJsonSchema({FILTERS_MARK: True})]

REF_MARK = "x-ragline-ref"
"""``{REF_MARK: "UserMessage"}`` in a model's JSON Schema becomes a ``$ref`` to that component
when the OpenAPI document is published (pydantic resolves only the references it makes)."""


def publish_filter_schemas(openapi: dict[str, Any]) -> dict[str, Any]:
    """Put the filter grammar into an OpenAPI document: every filters field refers to it (and
    every :data:`REF_MARK` becomes its ``$ref``).

    Example:
        >>> doc = {"paths": {"x": {"schema": {FILTERS_MARK: True}}}, "components": {"schemas": {}}}
        >>> publish_filter_schemas(doc)["paths"]["x"]["schema"]["anyOf"][2]
        {'$ref': '#/components/schemas/Filter'}
    """
    field_schema = {
        "anyOf": [
            {"type": "null"},
            {"type": "object", "maxProperties": 0},
            {"$ref": "#/components/schemas/Filter"},
        ]
    }

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if REF_MARK in value:
                return {"$ref": f"#/components/schemas/{value[REF_MARK]}"}
            if value.get(FILTERS_MARK):
                rest = {k: walk(v) for k, v in value.items() if k != FILTERS_MARK}
                return {**rest, **field_schema}
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    document = walk(openapi)
    document.setdefault("components", {}).setdefault("schemas", {}).update(FILTER_SCHEMAS)
    return document


FiltersField = Field(
    default=None,
    description=(
        'Metadata filter (MongoDB style): {"source": "a.md", "year": {"$gte": 2020}}. '
        "Operators: $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $not."
    ),
    examples=[{"source": "examples/corpus/faiss.md"}],
)


# -- search and ask ---------------------------------------------------------------------------
class SearchRequest(StrictModel):
    """``POST /v1/search``."""

    query: str = Field(
        min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK, examples=["What is FAISS?"]
    )
    k: TopK = Field(default=10, description="Hits to return.")
    filters: Filters = FiltersField

    _filters = field_validator("filters")(check_filters)


class HitOut(BaseModel):
    id: str
    score: float
    text: str
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    query: str
    hits: list[HitOut]


class AskRequest(StrictModel):
    """``POST /v1/ask``; ``stream: true`` answers with server-sent events."""

    question: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        pattern=NOT_BLANK,
        examples=["How does HNSW find neighbours?"],
    )
    k: TopK | None = Field(default=None, description="Contexts to retrieve.")
    filters: Filters = FiltersField
    stream: bool = Field(
        default=False,
        description=(
            "Stream as server-sent events: 'token' events ({\"text\": ...}) as they are "
            "generated, then one 'answer' event with the whole answer."
        ),
    )
    answer_style: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Answer in another style than the chain's (evidence, extractive, concise, "
            "sentences), as `rag ask --style` does; default: the pipeline file's."
        ),
        examples=["extractive"],
    )

    _filters = field_validator("filters")(check_filters)
    _answer_style = field_validator("answer_style")(check_answer_style)


class CitationOut(BaseModel):
    id: str
    source: str
    index: int


class ContextOut(BaseModel):
    index: int
    id: str
    source: str
    score: float | None
    text: str
    metadata: dict[str, Any]
    trimmed: bool


class AnswerSpanOut(BaseModel):
    """Where a grounded answer was copied from: ``contexts[index - 1].text[start:end]``."""

    index: int
    id: str
    start: int
    end: int
    logprob: float | None = None


class AskResponse(BaseModel):
    """The shape of ``rag ask --json``."""

    question: str
    answer: str
    citations: list[CitationOut]
    contexts: list[ContextOut]
    prompt: str
    messages: list[dict[str, Any]]
    timings: dict[str, float]
    usage: dict[str, int]
    tool_calls: list[dict[str, Any]]
    invalid_citations: int
    dropped_contexts: int
    steps: int
    finish_reason: str | None
    answer_style: str = "sentences"
    grounded: bool = Field(
        default=False,
        description="True only when the answer is a span proven to be copied from a cited context.",
    )
    span: AnswerSpanOut | None = None
    spans: list[AnswerSpanOut] = Field(
        default_factory=list,
        description="Every piece copied from a context, in text order (span is the first).",
    )


# -- documents --------------------------------------------------------------------------------
class DocumentIn(StrictModel):
    """A document given inline; it is split, embedded and stored like a loaded file."""

    id: str = Field(min_length=1, max_length=1_000, description="Stable source id.")
    text: str = Field(
        min_length=1,
        max_length=MAX_DOCUMENT_CHARS,
        pattern=NOT_BLANK,
        description="The document's text; it must hold more than white space.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="JSON metadata; 'source' defaults to the id. Numbers must be finite.",
    )

    _metadata = field_validator("metadata")(_check_json)


class DocumentsRequest(StrictModel):
    """``POST /v1/documents`` with a JSON body: inline ``documents`` or server-side ``paths``.

    Paths are files or directories under the server's allowed roots (``--allow-root``); a
    relative path is taken relative to the first root.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["documents"],
                    "properties": {"documents": {"type": "array"}, "paths": {"type": "null"}},
                },
                {
                    "required": ["paths"],
                    "properties": {"paths": {"type": "array"}, "documents": {"type": "null"}},
                },
            ]
        }
    )

    documents: list[DocumentIn] | None = Field(default=None, max_length=MAX_DOCUMENTS)
    paths: (
        list[
            Annotated[str, StringConstraints(min_length=1, max_length=4_096, pattern=r"^[^\x00]*$")]
        ]
        | None
    ) = Field(default=None, min_length=1, max_length=MAX_PATHS)
    replace: bool = Field(
        default=True,
        description="Inline documents replace the stored chunks of the same source.",
    )

    @field_validator("paths")
    @classmethod
    def _paths_not_empty(cls, value: list[str] | None) -> list[str] | None:
        for index, path in enumerate(value or []):
            if not path or "\x00" in path or len(path) > 4_096:
                raise ValueError(f"paths[{index}] must be a non-empty path without NUL bytes")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> DocumentsRequest:
        if (self.documents is None) == (self.paths is None):
            raise ValueError("give exactly one of 'documents' or 'paths'")
        return self


class IngestResponse(BaseModel):
    """The shape of ``rag ingest --json``."""

    sources: int
    chunks_written: int
    chunks_skipped: int
    chunks_deleted: int
    errors: list[dict[str, Any]]
    seconds: float


class DeleteRequest(StrictModel):
    """``DELETE /v1/documents``: chunk ``ids`` or a non-empty ``filters`` (not both)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["ids"],
                    "properties": {
                        "ids": {"type": "array"},
                        "filters": {
                            "anyOf": [{"type": "null"}, {"type": "object", "maxProperties": 0}]
                        },
                    },
                },
                {
                    "required": ["filters"],
                    "properties": {
                        "filters": {"type": "object", "minProperties": 1},
                        "ids": {"type": "null"},
                    },
                },
            ]
        }
    )

    ids: list[str] | None = Field(default=None, min_length=1, max_length=MAX_IDS)
    filters: Filters = FiltersField

    _filters = field_validator("filters")(check_filters)

    @model_validator(mode="after")
    def _exactly_one(self) -> DeleteRequest:
        if (self.ids is None) == (not self.filters):
            raise ValueError(
                "give exactly one of 'ids' or a non-empty 'filters' "
                '(to delete everything, say so: {"filters": {"source": {"$exists": true}}})'
            )
        return self


class DeleteResponse(BaseModel):
    deleted: int


# -- service ----------------------------------------------------------------------------------
class HealthResponse(BaseModel):
    status: Literal["ok"]
    version: str


class StatsResponse(BaseModel):
    """The shape of ``rag stats --json``."""

    chunks: int | None
    sources: int | None
    store: str | None
    dimension: int | None


class ErrorField(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    message: str
    type: str
    code: str
    param: str | None = None
    fields: list[ErrorField] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Every error (OpenAI-compatible: clients read ``error.message``)."""

    error: ErrorBody
