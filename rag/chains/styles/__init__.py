"""Answer styles: how ``chain.rag`` turns retrieved contexts into an answer (one seam).

========================  =====================================================================
``style.evidence``        the answering sentence of the contexts, verbatim, cited, grounded
                          (default with a local model); no generation
``style.extractive``      a short span copied from one context (grounded)
``style.concise``         a few generated words and a citation
``style.sentences``       two or three generated, cited sentences (default with a remote model)
========================  =====================================================================

In YAML, ``answer_style: {type: style.extractive, init_parameters: {span_candidates: 8}}``, or a
bare name (``answer_style: concise``) for the style's defaults. See :mod:`.base` for the
:class:`AnswerStyle` protocol.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from rag.chains.styles.base import NO_ANSWER, AnswerStyle, Draft, Style, StyleRequest
from rag.chains.styles.concise import ConciseStyle
from rag.chains.styles.evidence import EvidenceStyle
from rag.chains.styles.extractive import ExtractiveStyle
from rag.chains.styles.sentences import SentencesStyle
from rag.core.abilities import TakesAnswerPrefix, has
from rag.core.errors import ConfigError, did_you_mean
from rag.core.roles import Role

STYLES: dict[str, type[Style]] = {
    "evidence": EvidenceStyle,
    "extractive": ExtractiveStyle,
    "concise": ConciseStyle,
    "sentences": SentencesStyle,
}
"""Style name -> class; each is registered as ``style.<name>``."""
ANSWER_STYLES = tuple(STYLES)

# The flat chain.rag keys of earlier releases -> the style parameter they became.
LEGACY_KEYS: dict[str, dict[str, str]] = {
    "stop": {"sentences": "stop", "concise": "stop"},
    "answer_prefix": {"concise": "answer_prefix", "extractive": "answer_prefix"},
    "focus_sentences": {"concise": "focus_sentences", "extractive": "focus_sentences"},
    "max_span_tokens": {},  # greedy span decoding was removed: accepted, ignored
    "min_span_logprob": {"extractive": "min_span_logprob"},
    "span_end_bias": {},
    "span_prior": {},
    "span_search": {"extractive": "span_search"},
    "span_candidates": {"extractive": "span_candidates"},
    "instructions": {},  # per style: see _legacy_instructions
}


def default_style_name(generator: Any) -> str:
    """``evidence`` for a local model (a generator that takes an answer prefix), else
    ``sentences``."""
    return "evidence" if has(generator, TakesAnswerPrefix) else "sentences"


def style_class(name: str) -> type[Style]:
    """The style registered as ``name`` (``"extractive"`` or ``"style.extractive"``).

    Raises:
        ConfigError: no such style; the message lists the styles.
    """
    short = name.removeprefix("style.")
    if short not in STYLES:
        raise ConfigError(
            f"unknown answer_style {name!r}.{did_you_mean(short, list(STYLES))} "
            f"Known: {', '.join(STYLES)} (or style.{', style.'.join(STYLES)})",
            field="answer_style",
        )
    return STYLES[short]


def _legacy_instructions(name: str, instructions: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(instructions) - {*STYLES, "quote", "focused"})
    if unknown:
        raise ConfigError(
            f"instructions names unknown answer style(s) {', '.join(unknown)}; "
            f"allowed: {', '.join([*STYLES, 'quote', 'focused'])}",
            field="instructions",
        )
    params = {}
    if name in instructions and name != "evidence":
        params["instruction"] = instructions[name]
    if name == "extractive" and "quote" in instructions:
        params["quote_instruction"] = instructions["quote"]
    if name == "concise" and "focused" in instructions:
        params["focused_instruction"] = instructions["focused"]
    return params


def resolve_style(
    value: Any, generator: Any, legacy: dict[str, Any] | None = None, retriever: Any = None
) -> Style:
    """The style object of an ``answer_style`` value (a :class:`Style`, a name, or ``None`` for
    :func:`default_style_name`), with the flat keys of earlier releases (``legacy``) moved into
    its parameters (with a warning naming the new field). A style built from a name that takes
    an embedder (``style.evidence``) gets ``retriever``'s (:func:`retriever_embedder`), so
    ``answer_style: evidence`` weighs sentences as ``{type: style.evidence, init_parameters:
    {embedder: "@embedder"}}`` does.

    Raises:
        ConfigError: an unknown style name or an unknown legacy key.
    """
    legacy = dict(legacy or {})
    unknown = sorted(set(legacy) - set(LEGACY_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} for RagChain."
            f"{did_you_mean(unknown[0], list(LEGACY_KEYS))} Answer style settings go in "
            "answer_style: {type: style.<name>, init_parameters: {...}}",
            field=unknown[0],
        )
    if isinstance(value, Style) or (value is not None and not isinstance(value, str)):
        if legacy:
            raise ConfigError(
                f"{', '.join(sorted(legacy))} cannot be combined with a nested answer_style; "
                "move them into answer_style.init_parameters",
                field=sorted(legacy)[0],
            )
        if not isinstance(value, AnswerStyle):
            hint = (
                "; in Python pass the component, e.g. answer_style=EvidenceStyle(max_sentences=2) "
                "(from rag.chains): {type: ..., init_parameters: ...} is how a pipeline file "
                "writes it"
                if isinstance(value, Mapping)
                else ""
            )
            raise ConfigError(
                f"answer_style must be a style name or component, got {type(value).__name__}{hint}",
                field="answer_style",
            )
        return value  # type: ignore[return-value]
    name = (value or default_style_name(generator)).removeprefix("style.")
    cls = style_class(name)
    params: dict[str, Any] = {}
    for key, given in legacy.items():
        if key == "focus_sentences" and given is None:
            continue  # null meant "the style's default"
        if key == "instructions":
            params.update(_legacy_instructions(name, dict(given or {})))
        elif name in LEGACY_KEYS[key]:
            params[LEGACY_KEYS[key][name]] = given
    if legacy:
        warnings.warn(
            f"chain.rag parameter(s) {', '.join(sorted(legacy))} are deprecated and will be "
            f"removed in the next release; write them under answer_style: {{type: style.{name}, "
            f"init_parameters: {{{', '.join(sorted(params))}}}}}",
            FutureWarning,
            stacklevel=4,
        )
    if cls.takes_embedder and "embedder" not in params:
        params["embedder"] = retriever_embedder(retriever)
    return cls(**params)


EMBEDDER_HOLDERS = ("embedder", "retriever", "retrievers")
"""The attributes :func:`retriever_embedder` looks through (a hybrid retriever's parts, a
wrapped retriever)."""


def retriever_embedder(retriever: Any, depth: int = 3) -> Any:
    """The embedding model ``retriever`` embeds queries with (the first found through
    :data:`EMBEDDER_HOLDERS`, ``depth`` levels down), or ``None`` (a BM25 or remote retriever).

    Example:
        >>> from types import SimpleNamespace as Part
        >>> embedder = Part(embed_query=len, embed_documents=list, dimension=3)  # an embedder
        >>> hybrid = Part(retrievers=[Part(name="bm25"), Part(embedder=embedder)])
        >>> retriever_embedder(hybrid) is embedder, retriever_embedder(Part(name="bm25"))
        (True, None)
    """
    if retriever is None or depth < 0:
        return None
    if Role.EMBEDDER.played_by(retriever):  # looked up statically: no model is loaded
        return retriever
    for name in EMBEDDER_HOLDERS:
        held = getattr(retriever, name, None)
        for part in held if isinstance(held, list | tuple) else [held]:
            found = retriever_embedder(part, depth - 1) if part is not None else None
            if found is not None:
                return found
    return None


__all__ = [
    "ANSWER_STYLES",
    "NO_ANSWER",
    "STYLES",
    "AnswerStyle",
    "ConciseStyle",
    "Draft",
    "EvidenceStyle",
    "ExtractiveStyle",
    "SentencesStyle",
    "Style",
    "StyleRequest",
    "default_style_name",
    "resolve_style",
    "retriever_embedder",
    "style_class",
]
