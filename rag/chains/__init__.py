"""Chains: retrieval + prompt + generation, citations and tool calling.

- :class:`RagChain` (``chain.rag``): question -> retrieve -> prompt -> generate -> :class:`Answer`;
- answer styles (:mod:`rag.chains.styles`): ``style.evidence``, ``style.extractive``,
  ``style.concise``, ``style.sentences``, behind the :class:`AnswerStyle` protocol;
- :class:`Tool` / :class:`ToolRegistry`: plain Python functions the model may call.
"""

from rag.chains.answer import Answer, AnswerSpan, Citation, Context, parse_citations
from rag.chains.prompt import (
    DEFAULT_CONTEXT_TEMPLATE,
    DEFAULT_PROMPT_TEMPLATE,
    DEFAULT_SYSTEM_PROMPT,
    PromptBuilder,
)
from rag.chains.rag import RagChain
from rag.chains.styles import (
    ANSWER_STYLES,
    AnswerStyle,
    ConciseStyle,
    EvidenceStyle,
    ExtractiveStyle,
    SentencesStyle,
)
from rag.chains.tools import Tool, ToolArgumentError, ToolRegistry, default_tools, run_tool_call

__all__ = [
    "ANSWER_STYLES",
    "DEFAULT_CONTEXT_TEMPLATE",
    "DEFAULT_PROMPT_TEMPLATE",
    "DEFAULT_SYSTEM_PROMPT",
    "Answer",
    "AnswerSpan",
    "AnswerStyle",
    "Citation",
    "ConciseStyle",
    "Context",
    "EvidenceStyle",
    "ExtractiveStyle",
    "PromptBuilder",
    "RagChain",
    "SentencesStyle",
    "Tool",
    "ToolArgumentError",
    "ToolRegistry",
    "default_tools",
    "parse_citations",
    "run_tool_call",
]
