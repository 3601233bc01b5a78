"""Request and response bodies of the HTTP API (pydantic models, unknown fields refused).

Every request model forbids fields it does not know (``extra="forbid"``), so a typo such as
``"filter"`` for ``"filters"`` is a 422 that names the field instead of a silently ignored option.
Filters are validated with the one filter grammar (:func:`rag.core.filters.parse_filter`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rag.core.filters import parse_filter

MAX_QUERY_CHARS = 4_000
MAX_K = 100
MAX_DOCUMENTS = 1_000
MAX_DOCUMENT_CHARS = 1_000_000
MAX_IDS = 10_000
MAX_PATHS = 100


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_filters(value: dict[str, Any] | None) -> dict[str, Any] | None:
    parse_filter(value)  # FilterError is a ValueError: pydantic reports it on the field
    return value


FiltersField = Field(
    default=None,
    description=(
        'Metadata filter (MongoDB style): {"source": "a.md", "year": {"$gte": 2020}}. '
        "Operators: $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $not."
    ),
    examples=[{"source": "examples/corpus/faiss.md"}],
)


# -- search and ask ---------------------------------------------------------------------------
class SearchRequest(_Strict):
    """``POST /v1/search``."""

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, examples=["What is FAISS?"])
    k: int = Field(default=10, ge=1, le=MAX_K, description="Hits to return.")
    filters: dict[str, Any] | None = FiltersField

    _filters = field_validator("filters")(_check_filters)


class HitOut(BaseModel):
    id: str
    score: float
    text: str
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    query: str
    hits: list[HitOut]


class AskRequest(_Strict):
    """``POST /v1/ask``; ``stream: true`` answers with server-sent events."""

    question: str = Field(
        min_length=1, max_length=MAX_QUERY_CHARS, examples=["How does HNSW find neighbours?"]
    )
    k: int | None = Field(default=None, ge=1, le=MAX_K, description="Contexts to retrieve.")
    filters: dict[str, Any] | None = FiltersField
    stream: bool = Field(
        default=False,
        description=(
            "Stream as server-sent events: 'token' events ({\"text\": ...}) as they are "
            "generated, then one 'answer' event with the whole answer."
        ),
    )

    _filters = field_validator("filters")(_check_filters)


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


# -- documents --------------------------------------------------------------------------------
class DocumentIn(_Strict):
    """A document given inline; it is split, embedded and stored like a loaded file."""

    id: str = Field(min_length=1, max_length=1_000, description="Stable source id.")
    text: str = Field(min_length=1, max_length=MAX_DOCUMENT_CHARS)
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="JSON metadata; 'source' defaults to the id."
    )


class DocumentsRequest(_Strict):
    """``POST /v1/documents`` with a JSON body: inline ``documents`` or server-side ``paths``.

    Paths are files or directories under the server's allowed roots (``--allow-root``); a
    relative path is taken relative to the first root.
    """

    documents: list[DocumentIn] | None = Field(default=None, max_length=MAX_DOCUMENTS)
    paths: list[str] | None = Field(default=None, min_length=1, max_length=MAX_PATHS)
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


class DeleteRequest(_Strict):
    """``DELETE /v1/documents``: chunk ``ids`` or a non-empty ``filters`` (not both)."""

    ids: list[str] | None = Field(default=None, min_length=1, max_length=MAX_IDS)
    filters: dict[str, Any] | None = FiltersField

    _filters = field_validator("filters")(_check_filters)

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


# -- OpenAI-compatible chat completions -------------------------------------------------------
class ContentPart(_Strict):
    type: Literal["text"]
    text: str = Field(max_length=MAX_QUERY_CHARS)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # clients add 'name', 'tool_calls', ...

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatCompletionRequest(_Strict):
    """The subset of OpenAI's chat-completions request that a RAG answer honours.

    The last user message is the question; earlier turns are accepted and not used. Sampling
    options (``temperature``, ``max_tokens``, ...) are accepted for compatibility; the pipeline's
    generator settings apply. ``filters`` and ``k`` are ragline extensions (``extra_body`` in the
    OpenAI Python client).
    """

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=100)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=1, description="Only 1 is supported.")
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None
    k: int | None = Field(default=None, ge=1, le=MAX_K)
    filters: dict[str, Any] | None = FiltersField

    _filters = field_validator("filters")(_check_filters)

    @model_validator(mode="after")
    def _has_question(self) -> ChatCompletionRequest:
        question = self.question()
        if not question.strip():
            raise ValueError("the last 'user' message must have non-empty text content")
        if len(question) > MAX_QUERY_CHARS:
            raise ValueError(f"the last 'user' message is over {MAX_QUERY_CHARS} characters")
        return self

    def question(self) -> str:
        users = [m for m in self.messages if m.role == "user"]
        return users[-1].text() if users else ""


class ChatChoice(BaseModel):
    index: int
    message: dict[str, Any]
    finish_reason: str | None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: dict[str, int]
    citations: list[CitationOut] = Field(
        default_factory=list, description="ragline extension: the contexts the answer cites."
    )


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[dict[str, Any]]


# -- embeddings (OpenAI-compatible and TEI-style) --------------------------------------------
MAX_EMBED_INPUTS = 2_048  # OpenAI's limit per request
MAX_EMBED_CHARS = 100_000  # per input; the model truncates to its maximum sequence length


def _check_inputs(value: Any) -> Any:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError("must be a text or a list of texts (token arrays are not accepted)")
    if not texts:
        raise ValueError("give at least one text")
    if len(texts) > MAX_EMBED_INPUTS:
        raise ValueError(f"at most {MAX_EMBED_INPUTS} texts per request, got {len(texts)}")
    for index, text in enumerate(texts):
        if not text:
            raise ValueError(f"text {index} is empty")
        if len(text) > MAX_EMBED_CHARS:
            raise ValueError(f"text {index} is over {MAX_EMBED_CHARS} characters")
    return value


class EmbeddingsRequest(_Strict):
    """``POST /v1/embeddings``, as OpenAI's: texts only (token arrays are not accepted)."""

    model: str = Field(min_length=1, max_length=200, description="Echoed back; not checked.")
    input: str | list[str] = Field(
        description=f"A text or up to {MAX_EMBED_INPUTS} texts.", examples=[["What is FAISS?"]]
    )
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="'base64': little-endian float32 bytes, base64-encoded."
    )
    user: str | None = None

    _inputs = field_validator("input", mode="before")(_check_inputs)

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class EmbeddingOut(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class EmbeddingsResponse(BaseModel):
    object: Literal["list"]
    data: list[EmbeddingOut]
    model: str
    usage: dict[str, int]


class EmbedRequest(_Strict):
    """``POST /v1/embed``, as Text Embeddings Inference's ``/embed``.

    Inputs longer than the model's maximum sequence length are always truncated (TEI's
    ``truncate: true``), so ``truncate: false`` is refused rather than silently ignored.
    """

    inputs: str | list[str] = Field(
        description=f"A text or up to {MAX_EMBED_INPUTS} texts.", examples=[["What is FAISS?"]]
    )
    normalize: bool = Field(default=True, description="L2-normalize each vector.")
    truncate: Literal[True] = True

    _inputs = field_validator("inputs", mode="before")(_check_inputs)

    def texts(self) -> list[str]:
        return [self.inputs] if isinstance(self.inputs, str) else list(self.inputs)
