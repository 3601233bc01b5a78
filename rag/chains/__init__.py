"""Chains: retrieval + prompt + generation, citations and tool calling.

- :class:`RagChain` (``chain.rag``): question -> retrieve -> prompt -> generate -> :class:`Answer`;
- :class:`Tool` / :class:`ToolRegistry`: plain Python functions the model may call.
"""

from rag.chains.answer import Answer, AnswerSpan, Citation, Context, parse_citations
from rag.chains.rag import (
    ANSWER_STYLES,
    DEFAULT_CONTEXT_TEMPLATE,
    DEFAULT_PROMPT_TEMPLATE,
    DEFAULT_SYSTEM_PROMPT,
    RagChain,
)
from rag.chains.tools import Tool, ToolArgumentError, ToolRegistry, default_tools, run_tool_call

__all__ = [
    "ANSWER_STYLES",
    "DEFAULT_CONTEXT_TEMPLATE",
    "DEFAULT_PROMPT_TEMPLATE",
    "DEFAULT_SYSTEM_PROMPT",
    "Answer",
    "AnswerSpan",
    "Citation",
    "Context",
    "RagChain",
    "Tool",
    "ToolArgumentError",
    "ToolRegistry",
    "default_tools",
    "parse_citations",
    "run_tool_call",
]
