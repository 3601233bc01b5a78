from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchRequest(_message.Message):
    __slots__ = ("query", "k", "filters")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    query: str
    k: int
    filters: _struct_pb2.Struct
    def __init__(self, query: _Optional[str] = ..., k: _Optional[int] = ..., filters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "score", "text", "metadata")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    text: str
    metadata: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., text: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("query", "hits")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    query: str
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    def __init__(self, query: _Optional[str] = ..., hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ...) -> None: ...

class AskRequest(_message.Message):
    __slots__ = ("question", "k", "filters", "answer_style")
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    ANSWER_STYLE_FIELD_NUMBER: _ClassVar[int]
    question: str
    k: int
    filters: _struct_pb2.Struct
    answer_style: str
    def __init__(self, question: _Optional[str] = ..., k: _Optional[int] = ..., filters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., answer_style: _Optional[str] = ...) -> None: ...

class Citation(_message.Message):
    __slots__ = ("id", "source", "index")
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    id: str
    source: str
    index: int
    def __init__(self, id: _Optional[str] = ..., source: _Optional[str] = ..., index: _Optional[int] = ...) -> None: ...

class Context(_message.Message):
    __slots__ = ("index", "id", "source", "score", "text", "metadata", "trimmed")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    source: str
    score: float
    text: str
    metadata: _struct_pb2.Struct
    trimmed: bool
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., source: _Optional[str] = ..., score: _Optional[float] = ..., text: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., trimmed: bool = ...) -> None: ...

class Answer(_message.Message):
    __slots__ = ("question", "answer", "citations", "contexts", "prompt", "timings", "usage", "invalid_citations", "dropped_contexts", "steps", "finish_reason", "messages", "tool_calls", "answer_style", "grounded", "spans")
    class TimingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class UsageEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    INVALID_CITATIONS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    ANSWER_STYLE_FIELD_NUMBER: _ClassVar[int]
    GROUNDED_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    question: str
    answer: str
    citations: _containers.RepeatedCompositeFieldContainer[Citation]
    contexts: _containers.RepeatedCompositeFieldContainer[Context]
    prompt: str
    timings: _containers.ScalarMap[str, float]
    usage: _containers.ScalarMap[str, int]
    invalid_citations: int
    dropped_contexts: int
    steps: int
    finish_reason: str
    messages: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    tool_calls: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    answer_style: str
    grounded: bool
    spans: _containers.RepeatedCompositeFieldContainer[AnswerSpan]
    def __init__(self, question: _Optional[str] = ..., answer: _Optional[str] = ..., citations: _Optional[_Iterable[_Union[Citation, _Mapping]]] = ..., contexts: _Optional[_Iterable[_Union[Context, _Mapping]]] = ..., prompt: _Optional[str] = ..., timings: _Optional[_Mapping[str, float]] = ..., usage: _Optional[_Mapping[str, int]] = ..., invalid_citations: _Optional[int] = ..., dropped_contexts: _Optional[int] = ..., steps: _Optional[int] = ..., finish_reason: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., tool_calls: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., answer_style: _Optional[str] = ..., grounded: bool = ..., spans: _Optional[_Iterable[_Union[AnswerSpan, _Mapping]]] = ...) -> None: ...

class AnswerSpan(_message.Message):
    __slots__ = ("index", "id", "start", "end", "logprob")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    LOGPROB_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    start: int
    end: int
    logprob: float
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., logprob: _Optional[float] = ...) -> None: ...

class Token(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class AskEvent(_message.Message):
    __slots__ = ("token", "answer")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    token: Token
    answer: Answer
    def __init__(self, token: _Optional[_Union[Token, _Mapping]] = ..., answer: _Optional[_Union[Answer, _Mapping]] = ...) -> None: ...

class Document(_message.Message):
    __slots__ = ("id", "text", "metadata")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    metadata: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class IngestOptions(_message.Message):
    __slots__ = ("replace",)
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    replace: bool
    def __init__(self, replace: bool = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("options", "document")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    options: IngestOptions
    document: Document
    def __init__(self, options: _Optional[_Union[IngestOptions, _Mapping]] = ..., document: _Optional[_Union[Document, _Mapping]] = ...) -> None: ...

class IngestError(_message.Message):
    __slots__ = ("source", "error")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    source: str
    error: str
    def __init__(self, source: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("sources", "chunks_written", "chunks_skipped", "chunks_deleted", "errors", "seconds")
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_DELETED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    sources: int
    chunks_written: int
    chunks_skipped: int
    chunks_deleted: int
    errors: _containers.RepeatedCompositeFieldContainer[IngestError]
    seconds: float
    def __init__(self, sources: _Optional[int] = ..., chunks_written: _Optional[int] = ..., chunks_skipped: _Optional[int] = ..., chunks_deleted: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[IngestError, _Mapping]]] = ..., seconds: _Optional[float] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("chunks", "sources", "store", "dimension")
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    chunks: int
    sources: int
    store: str
    dimension: int
    def __init__(self, chunks: _Optional[int] = ..., sources: _Optional[int] = ..., store: _Optional[str] = ..., dimension: _Optional[int] = ...) -> None: ...
