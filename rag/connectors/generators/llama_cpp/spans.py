"""Span scoring: the model's log-probability of answering a prompt with each of a few spans.

:meth:`LlamaCppGenerator.score_spans <rag.connectors.generators.llama_cpp.LlamaCppGenerator.
score_spans>` evaluates the prompt once and each span after it. Scoring ten candidate answers
one after the other costs ten decodes of two or three tokens each, and on a CPU each decode has a
fixed cost that dwarfs those tokens. llama.cpp can hold several sequences in one KV cache: the
prompt is evaluated once as sequence 0, copied (by reference: with a unified cache the cells are
shared, not duplicated) to sequences 1..n, and every span is then appended to its own sequence in
one batch, where it attends to the prompt and to its own tokens only (:class:`ParallelScorer`).
The result is the same as scoring them one by one (:class:`SerialScorer`).

The parallel scorer's cache is a second context on the same weights, separate from the
generation context's, so scoring never disturbs a prompt the generator has cached, and its own
cached prompt is reused by the next call that starts the same way. Only llama.cpp builds with a
unified KV cache (``llama_context_params.kv_unified``; 0.3.36, which ``scripts/bootstrap.sh``
installs, has it) can share the prompt this way; :func:`supported` tells, and spans are scored
serially on the generation context otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from rag.core.generation import SpanLogprobs

SPAN_TERMINATORS = (".", ",", ";", ":", "!", "?", "\n", " (", ")")
"""Text whose token ends a span (with the end of turn): :attr:`SpanLogprobs.end` is the
log-probability of the likeliest of them after the span."""


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities from logits along the last axis (sums in float64).

    Forty times faster than ``logits - np.logaddexp.reduce(logits)`` over a 49k vocabulary,
    which was a third of the time of scoring ten spans.

    Example:
        >>> np.round(np.exp(log_softmax(np.array([0.0, np.log(3.0)]))), 2)
        array([0.25, 0.75])
    """
    shifted = logits - logits.max(axis=-1, keepdims=True)
    total = np.exp(shifted).sum(axis=-1, keepdims=True, dtype=np.float64)
    return shifted - np.log(total).astype(shifted.dtype)


def logprob_rows(ctx: Any, indices: Sequence[int] | range, vocab: int) -> np.ndarray:
    """Log-probabilities of the next token after each batch position in ``indices`` of the last
    decode of llama.cpp context ``ctx`` (one row per position)."""
    rows = np.stack([np.ctypeslib.as_array(ctx.get_logits_ith(i), shape=(vocab,)) for i in indices])
    return log_softmax(rows)


def next_logits(llm: Any) -> np.ndarray:
    """The logits of the token after the last one evaluated by ``llm`` (a ``llama_cpp.Llama``)."""
    return np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).copy()


def eval_prompt(llm: Any, tokens: list[int]) -> None:
    """Evaluate ``tokens`` on ``llm``, reusing the cached prefix of the last call (as llama.cpp's
    own completion does), and always evaluating at least the last token for fresh logits."""
    common = 0
    limit = min(int(llm.n_tokens), len(tokens) - 1)
    cached = llm.input_ids
    while common < limit and cached[common] == tokens[common]:
        common += 1
    llm.n_tokens = common
    llm.eval(tokens[common:])


def span_terminators(llm: Any) -> np.ndarray:
    """Token ids of ``llm`` that end a span: end of turn and the one-token
    :data:`SPAN_TERMINATORS`."""
    ids = {llm.token_eos()}
    for text in SPAN_TERMINATORS:
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        if len(tokens) == 1:
            ids.add(tokens[0])
    return np.asarray(sorted(i for i in ids if i >= 0), dtype=np.int64)


def supported() -> bool:
    """Whether the installed llama-cpp-python can share one prompt among sequences."""
    import llama_cpp

    fields = {name for name, *_ in llama_cpp.llama_context_params._fields_}
    parallel = hasattr(llama_cpp, "llama_max_parallel_sequences")  # older llama-cpp-python lacks it
    return "kv_unified" in fields and parallel


class Scorer(Protocol):
    """Evaluates a prompt and continuations of it (what :func:`score` needs)."""

    def prompt(self, tokens: list[int]) -> np.ndarray:
        """Evaluate ``tokens``; the log-probabilities of the token after them."""
        ...

    def continuations(self, continuations: Sequence[list[int]]) -> list[np.ndarray]:
        """Per continuation, the log-probabilities of the token after each of its tokens."""
        ...

    def forget(self) -> None:
        """Drop the cached prompt."""
        ...


class SerialScorer:
    """Continuations scored one by one on the generation context itself (no second cache).

    Each continuation is evaluated after the cached prompt and forgotten again, so the prompt
    stays cached for the next one.

    Args:
        llm: The loaded ``llama_cpp.Llama``.
    """

    def __init__(self, llm: Any) -> None:
        self._llm = llm

    def prompt(self, tokens: list[int]) -> np.ndarray:
        eval_prompt(self._llm, tokens)
        return log_softmax(next_logits(self._llm))

    def continuations(self, continuations: Sequence[list[int]]) -> list[np.ndarray]:
        llm = self._llm
        rows = []
        for tokens in continuations:
            llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
            llm._batch.set_batch(batch=tokens, n_past=llm.n_tokens, logits_all=True)
            llm._ctx.decode(llm._batch)
            rows.append(logprob_rows(llm._ctx, range(len(tokens)), llm.n_vocab()))
        return rows

    def forget(self) -> None:
        self._llm.reset()


class ParallelScorer:
    """A second context on a loaded model's weights: one prompt, up to ``sequences - 1``
    continuations per decode.

    Args:
        llm: The loaded ``llama_cpp.Llama`` (its weights, context size, batch size and threads
            are used).
        sequences: Sequences of the context: the prompt's, and one per continuation.
    """

    def __init__(self, llm: Any, *, sequences: int) -> None:
        import llama_cpp
        from llama_cpp import _internals

        own = llm.context_params
        params = type(own).from_buffer_copy(own)  # the same settings, so the same numbers
        # llama.cpp reserves outputs for at least one token per sequence in a batch
        limit = min(int(llama_cpp.llama_max_parallel_sequences()), int(own.n_batch))
        params.n_seq_max = max(2, min(sequences, limit))
        params.kv_unified = True
        self.sequences = int(params.n_seq_max)
        self.batch_size = int(own.n_batch)
        self._vocab = int(llm.n_vocab())
        self._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._batch = _internals.LlamaBatch(
            n_tokens=self.batch_size, embd=0, n_seq_max=self.sequences, verbose=False
        )
        self._cached: list[int] = []  # the tokens of sequence 0 now in the cache

    def prompt(self, tokens: list[int]) -> np.ndarray:
        """Evaluate ``tokens`` as sequence 0, reusing the cached prefix (at least the last token
        is evaluated), and return the log-probabilities of the token after them."""
        common = 0
        limit = min(len(self._cached), len(tokens) - 1)
        while common < limit and self._cached[common] == tokens[common]:
            common += 1
        self._cached = self._cached[:common]
        self._ctx.kv_cache_seq_rm(0, common, -1)
        for start in range(common, len(tokens), self.batch_size):
            chunk = tokens[start : start + self.batch_size]
            self._batch.set_batch(chunk, n_past=start, logits_all=False)
            self._ctx.decode(self._batch)
            self._cached.extend(chunk)
        return logprob_rows(self._ctx, [self._batch.n_tokens() - 1], self._vocab)[0]

    def continuations(self, continuations: Sequence[list[int]]) -> list[np.ndarray]:
        """For each of ``continuations`` (non-empty token lists, each at most ``batch_size``),
        the log-probabilities of the next token after each of its tokens (one row per token),
        as if it followed the last :meth:`prompt`. The cache keeps only the prompt afterwards."""
        if any(not 0 < len(tokens) <= self.batch_size for tokens in continuations):
            raise ValueError(f"continuations must have 1 to batch_size ({self.batch_size}) tokens")
        rows: list[np.ndarray] = []
        index = 0
        while index < len(continuations):
            group: list[list[int]] = []
            used = 0
            while (
                index < len(continuations)
                and len(group) < self.sequences - 1
                and used + len(continuations[index]) <= self.batch_size
            ):
                group.append(continuations[index])
                used += len(continuations[index])
                index += 1
            rows.extend(self._decode_group(group))
        return rows

    def _decode_group(self, group: list[list[int]]) -> list[np.ndarray]:
        batch = self._batch.batch
        start = len(self._cached)
        position = 0
        try:
            for sequence, tokens in enumerate(group, start=1):
                self._ctx.kv_cache_seq_cp(0, sequence, -1, -1)
                for offset, token in enumerate(tokens):
                    batch.token[position] = token
                    batch.pos[position] = start + offset
                    batch.seq_id[position][0] = sequence
                    batch.n_seq_id[position] = 1
                    batch.logits[position] = True
                    position += 1
            batch.n_tokens = position
            self._ctx.decode(self._batch)
            every = logprob_rows(self._ctx, range(position), self._vocab)
        finally:
            for sequence in range(1, len(group) + 1):
                self._ctx.kv_cache_seq_rm(sequence, -1, -1)
        rows, taken = [], 0
        for tokens in group:
            rows.append(every[taken : taken + len(tokens)])
            taken += len(tokens)
        return rows

    def forget(self) -> None:
        """Drop the cached prompt (after a failed decode the cache state is unknown)."""
        self._ctx.kv_cache_clear()
        self._cached = []


def score(
    scorer: Scorer, prompt: list[int], spans: Sequence[list[int]], terminators: np.ndarray
) -> list[SpanLogprobs]:
    """The log-probabilities of each of ``spans`` (token lists) following ``prompt``.

    A span whose tokens begin another span's is read from that span's rows (the
    log-probabilities are the same), so each distinct longest span is evaluated once. An empty
    span scores ``-inf``.

    Args:
        scorer: A :class:`ParallelScorer` or :class:`SerialScorer`.
        prompt: The prompt's tokens (the answer turn opened).
        spans: The spans' tokens.
        terminators: Token ids that end a span (:func:`span_terminators`).

    Raises:
        ValueError, RuntimeError: llama.cpp failed; the scorer's cache is forgotten first.
    """
    # Each span is read from the longest span that starts with its tokens.
    containers = [
        tuple(max((o for o in spans if o[: len(t)] == t), key=len)) if t else () for t in spans
    ]
    distinct = list(dict.fromkeys(c for c in containers if c))
    try:
        first = scorer.prompt(prompt)
        rows = scorer.continuations([list(c) for c in distinct])
    except (ValueError, RuntimeError):
        scorer.forget()
        raise
    rows_of = dict(zip(distinct, rows, strict=True))
    scores: list[SpanLogprobs] = []
    for tokens, container in zip(spans, containers, strict=True):
        if not tokens:
            scores.append(SpanLogprobs(-np.inf, -np.inf, -np.inf, 0))
            continue
        span_rows = rows_of[container]
        total = float(first[tokens[0]]) + sum(
            float(span_rows[n - 1][tokens[n]]) for n in range(1, len(tokens))
        )
        end = float(span_rows[len(tokens) - 1][terminators].max())
        scores.append(SpanLogprobs(float(first[tokens[0]]), total, end, len(tokens)))
    return scores
