"""Balanced chunking for ``splitter.recursive`` and ``splitter.markdown`` (``balanced: true``).

A text longer than the chunk size is cut at the coarsest boundaries into pieces of at most a
quarter chunk (:func:`leaves`), which :func:`balanced_merge` regroups into the fewest chunks
that fit, of about equal length. :func:`split_keep` is the separator cut both splitters share.
"""

from __future__ import annotations

from collections.abc import Callable

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


def leaves(
    text: str,
    start: int,
    end: int,
    count: Count,
    separators: list[str],
    limit: int,
) -> list[tuple[int, int]]:
    """Cut ``text[start:end]`` at the coarsest separators into pieces of at most ``limit``."""
    if count(start, end) <= limit:
        return [(start, end)]
    separator, rest = coarsest_separator(text, start, end, separators)
    pieces: list[tuple[int, int]] = []
    for piece in split_keep(text, start, end, separator):
        if count(*piece) > limit and (rest or separator != ""):
            pieces.extend(leaves(text, piece[0], piece[1], count, rest, limit))
        else:
            pieces.append(piece)
    return pieces


def balanced_merge(
    leaves: list[tuple[int, int]], count: Count, size: int, overlap: int
) -> list[tuple[int, int]]:
    """Group ``leaves`` into chunks of at most ``size`` and of about equal length.

    Each chunk aims at ``remaining / ceil(remaining / size)`` tokens (recomputed after every
    chunk), so a text of 1.1 chunks becomes two halves instead of a full chunk and a scrap.
    A chunk stops at the leaf boundary nearest that target; with ``overlap`` it then starts up
    to ``overlap`` tokens back (whole leaves), still within ``size``.
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
