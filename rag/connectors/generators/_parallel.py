"""Many short continuations of one prompt, scored in one llama.cpp decode (ranked extractive).

Scoring ten candidate answers one after the other costs ten decodes of two or three tokens each,
and on a CPU each decode has a fixed cost that dwarfs those tokens. llama.cpp can hold several
sequences in one KV cache: the prompt is evaluated once as sequence 0, copied (by reference:
with a unified cache the cells are shared, not duplicated) to sequences 1..n, and every candidate
is then appended to its own sequence in one batch, where it attends to the prompt and to its own
tokens only. The result is the same as scoring them one by one.

The cache of this second context is separate from the generation context's, so scoring never
disturbs a prompt the generator has cached, and its own cached prompt is reused by the next call
that starts the same way. Only llama.cpp builds with a unified KV cache
(``llama_context_params.kv_unified``; 0.3.36, which ``scripts/bootstrap.sh`` installs, has it)
can share the prompt this way; :func:`supported` tells, and the generator scores serially
otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.connectors.generators._spans import log_softmax


def logprob_rows(ctx: Any, indices: Sequence[int], vocab: int) -> Any:
    """Log-probabilities of the next token after each batch position in ``indices`` of the last
    decode of llama.cpp context ``ctx`` (one row per position)."""
    rows = np.stack([np.ctypeslib.as_array(ctx.get_logits_ith(i), shape=(vocab,)) for i in indices])
    return log_softmax(rows)


def supported() -> bool:
    """Whether the installed llama-cpp-python can share one prompt among sequences."""
    import llama_cpp

    fields = {name for name, *_ in llama_cpp.llama_context_params._fields_}
    return "kv_unified" in fields and hasattr(llama_cpp, "llama_max_parallel_sequences")


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

    def prompt(self, tokens: list[int]) -> Any:
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

    def continuations(self, continuations: Sequence[list[int]]) -> list[Any]:
        """For each of ``continuations`` (non-empty token lists, each at most ``batch_size``),
        the log-probabilities of the next token after each of its tokens (one row per token),
        as if it followed the last :meth:`prompt`. The cache keeps only the prompt afterwards."""
        if any(not 0 < len(tokens) <= self.batch_size for tokens in continuations):
            raise ValueError(f"continuations must have 1 to batch_size ({self.batch_size}) tokens")
        rows: list[Any] = []
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

    def _decode_group(self, group: list[list[int]]) -> list[Any]:
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
