"""Request and response bodies of the OpenAI-compatible routes and the embeddings routes.

``/v1/chat/completions``, ``/v1/models``, ``/v1/embeddings`` (OpenAI's shapes) and ``/v1/embed``
(Text Embeddings Inference's). The rules of :mod:`rag.serve._schemas` hold here too: unknown
fields are refused, types are strict, and the published schema is what the server enforces.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from rag.serve._schemas import (
    MAX_QUERY_CHARS,
    NOT_BLANK,
    REF_MARK,
    CitationOut,
    Filters,
    FiltersField,
    Integer,
    OnlyOne,
    Positive,
    StrictModel,
    TopK,
    check_answer_style,
    check_filters,
)


class ContentPart(StrictModel):
    type: Literal["text"]
    text: str = Field(max_length=MAX_QUERY_CHARS)


MAX_USER_PARTS = 8
"""Text parts in one user message; each holds at most ``MAX_QUERY_CHARS // MAX_USER_PARTS``."""


class UserContentPart(StrictModel):
    type: Literal["text"]
    text: str = Field(max_length=MAX_QUERY_CHARS // MAX_USER_PARTS)


def _parts_hold_text(parts: Any) -> Any:
    if isinstance(parts, list) and not any(part.text.strip() for part in parts):
        raise ValueError("a user message needs a text part that holds more than white space")
    return parts


class ChatMessage(BaseModel):
    """A system, assistant, tool or developer message (kept for compatibility, not used)."""

    model_config = ConfigDict(extra="allow")  # clients add 'name', 'tool_calls', ...

    role: Literal["system", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class UserMessage(ChatMessage):
    """A user message: its text must hold more than white space (the last one is the question)."""

    role: Literal["user"]  # type: ignore[assignment]
    content: (  # type: ignore[assignment]
        Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK)]
        | Annotated[
            list[UserContentPart],
            Field(
                min_length=1,
                max_length=MAX_USER_PARTS,
                json_schema_extra={"contains": {"properties": {"text": {"pattern": NOT_BLANK}}}},
            ),
            BeforeValidator(lambda parts: parts),
        ]
    )

    _content = field_validator("content")(_parts_hold_text)


class StreamOptions(StrictModel):
    include_usage: bool = False


class ChatCompletionRequest(StrictModel):
    """The subset of OpenAI's chat-completions request that a RAG answer honours.

    The last user message is the question; earlier turns are accepted and not used. Sampling
    options (``temperature``, ``max_tokens``, ...) are accepted for compatibility; the pipeline's
    generator settings apply. ``filters``, ``k`` and ``answer_style`` are ragline extensions
    (``extra_body`` in the OpenAI Python client).
    """

    model: str = Field(min_length=1, max_length=200)
    messages: list[Annotated[UserMessage | ChatMessage, Field(discriminator="role")]] = Field(
        min_length=1,
        max_length=100,
        json_schema_extra={"contains": {REF_MARK: "UserMessage"}},
        description="At least one 'user' message; the last one is the question.",
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: Positive | None = None
    max_completion_tokens: Positive | None = None
    n: OnlyOne | None = Field(default=None, description="Only 1 is supported.")
    stop: str | list[str] | None = None
    seed: Integer | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None
    k: TopK | None = None
    filters: Filters = FiltersField
    answer_style: str | None = Field(
        default=None, max_length=64, description="As POST /v1/ask's answer_style."
    )

    _filters = field_validator("filters")(check_filters)
    _answer_style = field_validator("answer_style")(check_answer_style)

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


EmbedText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_EMBED_CHARS)]
EmbedInputs = (
    EmbedText | Annotated[list[EmbedText], Field(min_length=1, max_length=MAX_EMBED_INPUTS)]
)


class EmbeddingsRequest(StrictModel):
    """``POST /v1/embeddings``, as OpenAI's: texts only (token arrays are not accepted)."""

    model: str = Field(min_length=1, max_length=200, description="Echoed back; not checked.")
    input: EmbedInputs = Field(
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


class EmbedRequest(StrictModel):
    """``POST /v1/embed``, as Text Embeddings Inference's ``/embed``.

    Inputs longer than the model's maximum sequence length are always truncated (TEI's
    ``truncate: true``), so ``truncate: false`` is refused rather than silently ignored.
    """

    inputs: EmbedInputs = Field(
        description=f"A text or up to {MAX_EMBED_INPUTS} texts.", examples=[["What is FAISS?"]]
    )
    normalize: bool = Field(default=True, description="L2-normalize each vector.")
    truncate: Literal[True] = True

    _inputs = field_validator("inputs", mode="before")(_check_inputs)

    def texts(self) -> list[str]:
        return [self.inputs] if isinstance(self.inputs, str) else list(self.inputs)
