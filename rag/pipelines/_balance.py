"""Balanced chunking for ``splitter.recursive`` and ``splitter.markdown`` (``balanced: true``).

A text longer than the chunk size is cut at the coarsest boundaries into pieces of at most a
quarter chunk (:func:`leaves`), which :func:`balanced_merge` regroups into the fewest chunks
that fit, of about equal length. :func:`cut_once` is the one level of cutting both splitters share
(at a separator, or at the sentence ends of :func:`rag.core.text.sentences`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from rag.core.text import sentences

Count = Callable[[int, int], int]  # tokens in text[start:end] (splitters.TokenCounter)


def split_keep(text: str, start: int, end: int, separator: str) -> list[tuple[int, int]]:
    """Split ``text[start:end]`` after each separator (the separator stays with the left part)."""
    if separator == "":
        return [(i, i + 1) for i in range(start, end)]
    pieces, cursor = [], start
    while cursor < end:
        found = text.find(separator, cursor, end)
        if found == -1:
            pieces.append((cursor, end))
            break
        cut = found + len(separator)
        pieces.append((cursor, cut))
        cursor = cut
    return pieces


def coarsest_separator(
    text: str, start: int, end: int, separators: list[str]
) -> tuple[str, list[str]]:
    """The coarsest of ``separators`` found in ``text[start:end]`` (the last one if none is;
    ``""`` cuts between characters), and the finer ones left to try after it."""
    index = next(
        (i for i, s in enumerate(separators) if s == "" or text.find(s, start, end) != -1),
        len(separators) - 1,
    )
    return (separators[index] if separators else ""), separators[index + 1 :]


def cut_once(
    text: str, start: int, end: int, separators: list[str], by_sentence: bool
) -> tuple[list[tuple[int, int]], list[str], bool]:
    """Cut ``text[start:end]`` once: the pieces, then the separators and the ``by_sentence`` left
    for a piece still too long.

    The cut is at the coarsest of ``separators`` found. With ``by_sentence``, a text that no line
    break separates (one line or paragraph) is first cut at its sentence ends, as
    :func:`rag.core.text.sentences` finds them (quoted sentences and abbreviations included,
    which ``". "`` misses or cuts wrongly); a single sentence goes on to the separators. The
    white space after a cut stays with the left piece; the pieces cover ``text[start:end]``.

    Example:
        >>> text = 'He said "It works." "Dr. Roe agreed."'
        >>> [text[a:b] for a, b in cut_once(text, 0, len(text), [". ", " "], True)[0]]
        ['He said "It works." ', '"Dr. Roe agreed."']
        >>> [text[a:b] for a, b in cut_once(text, 0, len(text), [". ", " "], False)[0]]
        ['He said "It works." "Dr. ', 'Roe agreed."']
    """
    separator, rest = coarsest_separator(text, start, end, separators)
    if by_sentence and "\n" not in separator:
        starts = [start + a for a, _ in sentences(text[start:end])[1:]]
        if starts:
            bounds = [start, *starts, end]
            return list(itertools.pairwise(bounds)), separators, False  # one sentence each
    return split_keep(text, start, end, separator), rest, by_sentence


def leaves(
    text: str,
    start: int,
    end: int,
    count: Count,
    separators: list[str],
    limit: int,
    by_sentence: bool = False,
    merge: Callable[[list[tuple[int, int]]], list[tuple[int, int]]] | None = None,
) -> list[tuple[int, int]]:
    """Cut ``text[start:end]`` at the coarsest boundaries (:func:`cut_once`) into pieces of at most
    ``limit``; with ``merge``, the pieces of every cut are merged by it (the greedy splitter)."""
    if count(start, end) <= limit:
        return [(start, end)]
    pieces: list[tuple[int, int]] = []
    parts, rest, by_sentence = cut_once(text, start, end, separators, by_sentence)
    for piece in parts:
        if count(*piece) > limit and (rest or piece[1] - piece[0] > 1):
            pieces.extend(leaves(text, *piece, count, rest, limit, by_sentence, merge))
        else:
            pieces.append(piece)
    return pieces if merge is None else merge(pieces)


def sentence_final(text: str, leaves: list[tuple[int, int]]) -> list[bool]:
    """Whether each of ``leaves`` ends a sentence (:func:`rag.core.text.sentences`), trailing
    white space aside.

    Example:
        >>> text = "One, two. Three."
        >>> sentence_final(text, [(0, 5), (5, 10), (10, 16)])
        [False, True, True]
    """
    if not leaves:
        return []
    offset = leaves[0][0]
    ends = {offset + b for _, b in sentences(text[offset : leaves[-1][1]])}
    return [a + len(text[a:b].rstrip()) in ends for a, b in leaves]


def balanced_merge(
    leaves: list[tuple[int, int]],
    count: Count,
    size: int,
    overlap: int,
    preferred: list[bool] | None = None,
) -> list[tuple[int, int]]:
    """Group ``leaves`` into chunks of at most ``size`` and of about equal length.

    Each chunk aims at ``remaining / ceil(remaining / size)`` tokens (recomputed after every
    chunk), so a text of 1.1 chunks becomes two halves instead of a full chunk and a scrap.
    A chunk stops at the leaf boundary nearest that target; with ``preferred`` (one flag per
    leaf, e.g. :func:`sentence_final`) at the preferred boundary nearest it instead, when one
    gives a chunk of at least half the target within ``size``. With ``overlap`` a chunk then
    starts up to ``overlap`` tokens back (whole leaves), still within ``size``.
    """
    groups: list[tuple[int, int]] = []
    first = 0
    while first < len(leaves):
        remaining = count(leaves[first][0], leaves[-1][1])
        target = remaining / max(1, -(-remaining // size))
        last = first + 1  # the group is leaves[first:last]
        while last < len(leaves):
            now = count(leaves[first][0], leaves[last - 1][1])
            grown = count(leaves[first][0], leaves[last][1])
            if grown > size or now >= target:
                break
            if grown - target > target - now and now > target / 2:
                break  # stopping here is nearer the target than taking the next leaf
            last += 1
        if preferred and last < len(leaves) and not preferred[last - 1]:
            last = _preferred_stop(leaves, count, size, target, first, preferred) or last
        groups.append((first, last))
        first = last
    spans = []
    for first, last in groups:
        begin = first
        while (
            overlap
            and begin > 0
            and count(leaves[begin - 1][0], leaves[first][0]) <= overlap
            and count(leaves[begin - 1][0], leaves[last - 1][1]) <= size
        ):
            begin -= 1
        spans.append((leaves[begin][0], leaves[last - 1][1]))
    return spans


def _preferred_stop(
    leaves: list[tuple[int, int]],
    count: Count,
    size: int,
    target: float,
    first: int,
    preferred: list[bool],
) -> int | None:
    """The end (exclusive) of the group from ``leaves[first]`` that stops at a preferred
    boundary, holds at least half the target, fits ``size`` and is nearest the target; ``None``
    when there is no such group."""
    best: tuple[float, int] | None = None
    for last in range(first + 1, len(leaves) + 1):
        tokens = count(leaves[first][0], leaves[last - 1][1])
        if tokens > size:
            break
        if (last == len(leaves) or preferred[last - 1]) and tokens >= target / 2:
            distance = abs(tokens - target)
            if best is None or distance < best[0]:
                best = (distance, last)
    return best[1] if best else None
