"""``generator.llama_cpp``: a local GGUF chat model run by ``llama-cpp-python``.

- :mod:`.generator`: :class:`LlamaCppGenerator` (loading, chat, streaming, tool calls, the
  answer prefix, token counting);
- :mod:`.spans`: span scoring (:meth:`LlamaCppGenerator.score_spans`), many spans per decode.

Greedy constrained span decoding (``generate_extractive``) was removed: on XQuAD it answered
far worse than ranking candidate spans and scoring them with :meth:`~LlamaCppGenerator.score_spans`,
and no faster (figures in ``docs/concepts/text.md``).

``llama_cpp`` itself is imported only when a model is loaded, so importing this package is cheap.

Example:
    >>> from rag.connectors.generators.llama_cpp import LlamaCppGenerator
    >>> LlamaCppGenerator(model="smollm2-135m-instruct").context_size
    4096
"""

from rag.connectors.generators.llama_cpp.generator import (
    DEFAULT_TOOL_PROMPT,
    OPTIONS,
    PACKAGED_MODELS,
    TOOL_CHOICES,
    LlamaCppGenerator,
    resolve_model_path,
    tool_call_schema,
)
from rag.connectors.generators.llama_cpp.spans import SPAN_TERMINATORS

__all__ = [
    "DEFAULT_TOOL_PROMPT",
    "OPTIONS",
    "PACKAGED_MODELS",
    "SPAN_TERMINATORS",
    "TOOL_CHOICES",
    "LlamaCppGenerator",
    "resolve_model_path",
    "tool_call_schema",
]
