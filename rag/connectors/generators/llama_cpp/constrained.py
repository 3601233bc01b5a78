"""Greedy constrained span decoding: the answer copied token by token from the contexts.

:meth:`LlamaCppGenerator.generate_extractive <rag.connectors.generators.llama_cpp.
LlamaCppGenerator.generate_extractive>` decodes under a constraint (:func:`decode`): the first
token is the model's favourite among the tokens that start a word in some context; each next token
is its favourite among the tokens that continue the span somewhere in the contexts. So every
answer word provably comes from one cited context.

A :class:`SpanIndex` holds the token ids of every context, concatenated, with a separator between
contexts. The state of a span being generated is the array of positions where the tokens generated
so far end in some context; the tokens allowed next are the tokens that follow those positions.
Every state therefore names at least one place in the contexts that the span was copied from:
that is the proof behind ``grounded``.

Tokenization: each context is tokenized alone, with a leading space, so that every word (the
first included) is a token with a leading space, as a model writes it after ``"The answer is"``.
The byte pieces of the tokens add up to the context's bytes; their running sums are the offsets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag.connectors.generators.llama_cpp.spans import eval_prompt, log_softmax, next_logits
from rag.core.generation import GenerationResult, Span, Usage

SEPARATOR = -1
_WORD = re.compile(r"\w+")
_SENTENCE_END = (b".", b"!", b"?")


def _is_word_byte(byte: int) -> bool:
    """Letters and digits (and any byte of a multi-byte UTF-8 character)."""
    return byte >= 0x80 or chr(byte).isalnum()


@dataclass(frozen=True)
class SpanMatch:
    """Where a span was copied from: a context (0-based) and character offsets into its text."""

    context: int
    start: int
    end: int


class SpanIndex:
    """Every token span of ``texts``, for constrained decoding.

    Args:
        texts: The contexts, in prompt order.
        tokenize: ``text -> token ids`` of the model (no BOS, no special tokens).
        piece: ``token id -> bytes`` of that token.

    Example:
        >>> words = {" the": 1, " cat": 2, " sat": 3, ".": 4}
        >>> tokens = lambda text: [words[w] for w in (" the", " cat", " sat", ".")]
        >>> pieces = {v: k.encode() for k, v in words.items()}
        >>> index = SpanIndex(["the cat sat."], tokens, pieces.get)
        >>> sorted(index.next_tokens(None).tolist())
        [1, 2, 3]
        >>> state = index.advance(index.advance(None, 2), 3)
        >>> index.match(state, 2)
        SpanMatch(context=0, start=4, end=11)
    """

    def __init__(
        self,
        texts: Sequence[str],
        tokenize: Callable[[str], Sequence[int]],
        piece: Callable[[int], bytes],
    ) -> None:
        self.texts = list(texts)
        flat: list[int] = []
        context_of: list[int] = []
        starts: list[int] = []  # character offset of each token in its text
        ends: list[int] = []
        pieces: list[bytes] = []
        for number, text in enumerate(self.texts):
            padded = " " + text
            ids = list(tokenize(padded))
            token_pieces = [piece(t) for t in ids]
            if b"".join(token_pieces) != padded.encode("utf-8"):
                # A tokenizer that normalizes text: offsets cannot be proven, so no span here.
                continue
            char_at = _char_offsets(padded)
            offset = 0
            for token, token_piece in zip(ids, token_pieces, strict=True):
                flat.append(int(token))
                context_of.append(number)
                pieces.append(token_piece)
                # -1: offsets into ``text`` (without the added space)
                starts.append(max(0, char_at[offset] - 1))
                offset += len(token_piece)
                ends.append(max(0, char_at[offset] - 1))
            flat.append(SEPARATOR)
            context_of.append(number)
            pieces.append(b"")
            starts.append(len(text))
            ends.append(len(text))
        self.flat = np.asarray(flat or [SEPARATOR], dtype=np.int64)
        self.context_of = np.asarray(context_of or [0], dtype=np.int64)
        self.start_char = np.asarray(starts or [0], dtype=np.int64)
        self.end_char = np.asarray(ends or [0], dtype=np.int64)
        pieces = pieces or [b""]
        size = len(self.flat)
        word_start = np.zeros(size, dtype=bool)
        boundary_after = np.zeros(size, dtype=bool)
        newline = np.zeros(size, dtype=bool)
        sentence_end = np.zeros(size, dtype=bool)
        for p, token_piece in enumerate(pieces):
            if self.flat[p] == SEPARATOR:
                continue
            stripped = token_piece.lstrip()
            previous = pieces[p - 1] if p > 0 else b" "
            spaced = token_piece[:1].isspace() or previous[-1:].isspace() or previous == b""
            following = pieces[p + 1] if p + 1 < size else b""
            word_start[p] = spaced and bool(stripped) and _is_word_byte(stripped[0])
            newline[p] = b"\n" in token_piece
            if token_piece == b" " and following[:1] and _is_word_byte(following[0]):
                word_start[p] = True  # vocabularies that split " 1995" into " ", "1", ...

            sentence_end[p] = token_piece.rstrip().endswith(_SENTENCE_END)
            boundary_after[p] = (
                self.flat[p + 1] == SEPARATOR
                or following[:1].isspace()
                or not _is_word_byte(following[0])
                or not _is_word_byte(token_piece[-1])
            )
        self.word_start = word_start
        self.boundary_after = boundary_after
        self.newline = newline
        self.sentence_end = sentence_end
        self.starts = np.flatnonzero(word_start)
        self.start_scores: np.ndarray | None = None

    def weigh_starts(self, prior: Callable[[int, int], float | None]) -> None:
        """Score every start with ``prior(context, character offset)``; a start scored ``None``
        goes (unless every start would go). The scores are kept in :attr:`start_scores`,
        aligned with :attr:`starts`."""
        scores = [prior(int(self.context_of[p]), int(self.start_char[p])) for p in self.starts]
        keep = np.asarray([s is not None for s in scores], dtype=bool)
        if not keep.any():
            self.start_scores = np.zeros(len(self.starts))
            return
        self.starts = self.starts[keep]
        self.start_scores = np.asarray([s for s in scores if s is not None], dtype=float)

    def start_word(self, position: int) -> str:
        """The word (letters and digits, lower case) a span starting at ``position`` begins with."""
        text = self.texts[int(self.context_of[position])]
        found = _WORD.search(text, int(self.start_char[position]))
        return found.group(0).lower() if found is not None else ""

    def avoid_starts(self, words: Collection[str]) -> None:
        """Let no span start with one of ``words`` (lower case), unless every start would go."""
        if not words:
            return
        keep = np.asarray([self.start_word(p) not in words for p in self.starts], dtype=bool)
        if keep.any():
            self.starts = self.starts[keep]
            if self.start_scores is not None:
                self.start_scores = self.start_scores[keep]

    def __len__(self) -> int:
        return int(np.count_nonzero(self.flat != SEPARATOR))

    def candidates(self, state: np.ndarray | None) -> np.ndarray:
        """Positions whose token may come next: word starts first, then what follows ``state``."""
        if state is None:
            return self.starts
        following = state + 1
        following = following[following < len(self.flat)]
        keep = (self.flat[following] != SEPARATOR) & ~self.newline[following]
        return following[keep]

    def next_tokens(self, state: np.ndarray | None) -> np.ndarray:
        """Token ids allowed next (unique)."""
        return np.unique(self.flat[self.candidates(state)])

    def advance(self, state: np.ndarray | None, token: int) -> np.ndarray:
        """The positions where the span ends after appending ``token``."""
        positions = self.candidates(state)
        return positions[self.flat[positions] == token]

    def can_end(self, state: np.ndarray) -> bool:
        """Whether the span may stop here (at the end of a word in at least one match)."""
        return bool(np.any(self.boundary_after[state]))

    def at_sentence_end(self, state: np.ndarray) -> bool:
        """Whether every match ends a sentence (a span never runs on into the next one)."""
        return bool(np.all(self.sentence_end[state]))

    def match(self, state: np.ndarray, length: int) -> SpanMatch:
        """The first match (highest-ranked context, earliest place) of a ``length``-token span;
        a match that ends at a word boundary is preferred."""
        ends = state[self.boundary_after[state]]
        end = int((ends if len(ends) else state)[0])
        begin = end - length + 1
        context = int(self.context_of[end])
        text = self.texts[context]
        start, stop = int(self.start_char[begin]), int(self.end_char[end])
        while start < stop and text[start].isspace():
            start += 1
        while stop > start and text[stop - 1].isspace():
            stop -= 1
        return SpanMatch(context=context, start=start, end=stop)


def _char_offsets(text: str) -> list[int]:
    """For each byte offset of ``text`` in UTF-8 (and one past the end), its character offset."""
    table: list[int] = []
    for index, char in enumerate(text):
        table.extend([index] * len(char.encode("utf-8")))
    table.append(len(text))
    return table


def decode(
    llm: Any,
    prompt: list[int],
    contexts: Sequence[str],
    *,
    terminators: np.ndarray,
    max_span_tokens: int,
    min_logprob: float | None = None,
    avoid_start_words: Collection[str] = (),
    end_bias: float = 0.0,
    start_prior: Callable[[int, int], float | None] | None = None,
    trace: list[dict[str, Any]] | None = None,
) -> GenerationResult:
    """Copy one span of ``contexts`` after ``prompt``, chosen token by token by ``llm``.

    The span ends at a word boundary when the model prefers ending (one of ``terminators``) to
    copying on, at the end of a sentence, or after ``max_span_tokens``. It never crosses a line
    or a context. The caller holds the model's lock; the arguments are those of
    :meth:`~rag.connectors.generators.llama_cpp.LlamaCppGenerator.generate_extractive`.

    Raises:
        ValueError, RuntimeError: llama.cpp failed.
    """
    pieces: dict[int, bytes] = {}

    def piece(token: int) -> bytes:
        if token not in pieces:
            pieces[token] = llm.detokenize([token])
        return pieces[token]

    def tokenize(text: str) -> list[int]:
        return list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    index = SpanIndex(contexts, tokenize, piece)
    index.avoid_starts(set(avoid_start_words))
    if start_prior is not None:
        index.weigh_starts(start_prior)
    eval_prompt(llm, prompt)
    state = None
    length = 0
    first_logprob = None
    blank = True  # only whitespace taken so far (a span never ends blank)
    finish_reason = "stop"
    while True:
        logprobs = log_softmax(next_logits(llm))
        tokens = index.flat[index.candidates(state)]
        end = float(logprobs[terminators].max()) + end_bias
        if trace is not None:
            trace.append(
                {
                    "length": length,
                    "can_end": state is not None and index.can_end(state),
                    "end": end - end_bias,
                    "copy": float(logprobs[tokens].max()) if len(tokens) else None,
                }
            )
        if state is not None and not blank and index.can_end(state):
            if index.at_sentence_end(state) or length >= max_span_tokens:
                finish_reason = "length" if length >= max_span_tokens else "stop"
                break
            if not len(tokens) or end >= logprobs[tokens].max():
                break
        if not len(tokens) or length >= max_span_tokens + 8:
            finish_reason = "length"
            break  # no word boundary in reach: stop mid-word rather than run on
        position = None
        if state is None and index.start_scores is not None and len(tokens):
            scored = logprobs[tokens] + index.start_scores
            position = int(index.starts[np.argmax(scored)])
            best = int(index.flat[position])
        else:
            best = int(tokens[np.argmax(logprobs[tokens])])
        if first_logprob is None:
            first_logprob = float(logprobs[best])
            if min_logprob is not None and first_logprob < min_logprob:
                usage = Usage(prompt_tokens=len(prompt), completion_tokens=0)
                return GenerationResult(text="", usage=usage, finish_reason="abstain")
        if position is not None:  # the chosen place, followed alone
            if trace is not None:
                trace[-1]["piece"] = piece(best).decode("utf-8", errors="replace")
            state, length = np.asarray([position]), 1
            blank = piece(best).isspace()
            llm.eval([best])
            continue
        if state is None and piece(best).isspace():
            taken, after = _space_or_word(llm, index, tokens, logprobs, best, piece)
            if after is not None:  # a number, evaluated already
                if trace is not None:
                    trace[-1]["piece"] = b"".join(piece(t) for t in taken).decode(
                        "utf-8", errors="replace"
                    )
                state, length = after, len(taken)
                blank = all(piece(t).isspace() for t in taken)
                continue
            best = taken[0]
        if trace is not None:
            trace[-1]["piece"] = piece(best).decode("utf-8", errors="replace")
        state = index.advance(state, best)
        length += 1
        blank = blank and piece(best).isspace()
        llm.eval([best])
    usage = Usage(prompt_tokens=len(prompt), completion_tokens=length)
    if state is None:  # no context had any word
        return GenerationResult(text="", usage=usage, finish_reason="abstain")
    match = index.match(state, length)
    text = contexts[match.context][match.start : match.end]
    span = Span(match.context, match.start, match.end, logprob=first_logprob)
    return GenerationResult(text=text, usage=usage, finish_reason=finish_reason, span=span)


def _space_or_word(
    llm: Any,
    index: SpanIndex,
    tokens: np.ndarray,
    logprobs: np.ndarray,
    space: int,
    piece: Callable[[int], bytes],
) -> tuple[list[int], np.ndarray | None]:
    """The first tokens of the span when the model's favourite start is a bare space.

    Vocabularies that split numbers (" 1995" -> " ", "1", "9", "9", "5") make one space token
    the start of every number in the contexts, so its probability is summed over all of them
    and numbers win too often. Compare whole words instead: follow the space with the model's
    best continuation until the word can end, and keep that (already evaluated) only if the
    word is likelier than the best start that is a whole-word token; else forget it.

    Returns:
        The tokens taken (evaluated, except a single rival word) and the span state after
        them (``None`` when the rival was taken and is still to be evaluated).
    """
    words = np.asarray([t for t in np.unique(tokens) if not piece(int(t)).isspace()])
    if not len(words):
        return [space], None
    rival = int(words[np.argmax(logprobs[words])])
    taken = [space]
    state = index.advance(None, space)
    total = float(logprobs[space])
    llm.eval([space])
    while total >= logprobs[rival]:
        following = index.flat[index.candidates(state)]
        if (len(taken) > 1 and index.can_end(state)) or not len(following) or len(taken) > 8:
            return taken, state
        after = log_softmax(next_logits(llm))
        best = int(following[np.argmax(after[following])])
        total += float(after[best])
        taken.append(best)
        state = index.advance(state, best)
        llm.eval([best])
    llm.n_tokens -= len(taken)  # forget the number: the next eval overwrites the cache
    return [rival], None
