"""Text rules, kept once: sentences, stop words, stems and question kinds.

The splitters (:mod:`rag.pipelines.splitters`), the answer styles (:mod:`rag.chains`) and the
answer metrics (:mod:`rag.eval.metrics`) all read text with these rules, so a sentence, a stop
word or a stem means the same thing at ingestion, at answer time and in evaluation.

- :func:`sentences`: character ranges of the sentences of a text (rule-based, no model), and
  :func:`word_windows`: a sentence too long to quote cut into windows of words;
- :data:`STOPWORDS`: 126 English function words;
- :func:`stem`: a crude, dependency-free suffix stripper; :func:`content_stems` uses both;
- :func:`question_kind`: the kind of answer a question asks for (:data:`KINDS`), and
  :func:`fits_kind`: whether a word looks like the start of such an answer;
- :data:`MONTHS`, :data:`NUMBER_WORDS`: the words :func:`fits_kind` knows.

Everything here is a pure function or a frozen constant, English-first, and imports nothing but
the standard library.

Example:
    >>> text = "Dr. Jane Roe founded Acme in 1931. It makes anvils."
    >>> [text[a:b] for a, b in sentences(text)]
    ['Dr. Jane Roe founded Acme in 1931.', 'It makes anvils.']
    >>> question_kind("When was Acme founded?"), sorted(content_stems("Who founded Acme?"))
    ('date', ['acme', 'found'])
"""

from __future__ import annotations

import re

__all__ = [
    "KINDS",
    "MONTHS",
    "NUMBER_WORDS",
    "START_STOPWORDS",
    "STOPWORDS",
    "WORD",
    "answer_type",
    "content_stems",
    "fits_kind",
    "question_kind",
    "sentences",
    "split_sentences",
    "stem",
    "word_windows",
]

# --- Stop words ---------------------------------------------------------------------------------

_STOPWORDS_TEXT = """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves
"""
STOPWORDS: frozenset[str] = frozenset(_STOPWORDS_TEXT.split())
"""126 lower-case English function words (NLTK's list less its contractions).

What the answer metrics leave out of an answer's content words, what question and sentence
overlap ignores, and the words an extractive answer does not start with (a span that starts
"in the ..." is a phrase around the answer, not the answer).

Example:
    >>> len(STOPWORDS), "the" in STOPWORDS, "anvil" in STOPWORDS
    (126, True, False)
"""

START_STOPWORDS = STOPWORDS
"""The same list under the name the answer styles used for it (one list, two names)."""

# --- Words and stems ----------------------------------------------------------------------------

WORD = re.compile(r"\w+")
"""A word, as stems and overlaps count them: a run of letters, digits and underscores."""

_SUFFIXES = ("ings", "ing", "edly", "ed", "ies", "es", "s", "ly")


def stem(word: str) -> str:
    """A crude, dependency-free stem: lower case, one common English suffix off.

    A suffix comes off only when at least three characters remain, so short words stay whole.

    Example:
        >>> [stem(w) for w in ("Played", "plays", "playing", "Bowl", "is")]
        ['play', 'play', 'play', 'bowl', 'is']
    """
    word = word.lower()
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


_STOP_STEMS = frozenset(stem(w) for w in STOPWORDS)


def content_stems(text: str) -> set[str]:
    """The stems of the content words of ``text`` (stop words left out).

    Example:
        >>> sorted(content_stems("Who founded the Acme company?"))
        ['acme', 'company', 'found']
    """
    return {stem(w) for w in WORD.findall(text)} - _STOP_STEMS


# --- Sentences ----------------------------------------------------------------------------------

# A sentence ends:
# - at ., ! or ? (and any closing quotes or brackets, which stay with it) before white space and
#   a capital, a digit or a camel-case word ("efSearch", "iOS"), optionally behind an opening
#   quote or bracket;
# - at 。！？ (no white space needed in Chinese or Japanese text);
# - at a blank line (a Windows "\r\n\r\n" too), and before a line that starts a Markdown heading
#   or list item.
# A single line break inside a paragraph (hard-wrapped text) does not end one.
_SENTENCE_BREAK = re.compile(
    r"([.!?][\"'”’)\]]*)\s+(?=[\"'“‘(\[]?(?:[A-Z0-9À-ÖØ-Þ]|[a-z]+[A-Z]))"
    r"|([。！？][」』）”’\"')\]]*)\s*(?=\S)"
    r"|\n[ \t\r]*\n\s*"
    r"|\n(?=[ \t]*(?:#|[-*+] |\d+[.)] ))"
)
# The period of an initial ("Herbert A. Simon", "U.S.") or of a title or short form that is mostly
# followed by a name or a number ("St. Louis", "No. 5", "Fig. 3", "et al. 1998") ends nothing.
# "etc." is left out on purpose: it mostly ends its sentence. Looked for in the 10 characters
# before the period: the longest form ("approx.") and the character before it.
_NOT_AN_END = re.compile(
    r"(?:^|[\s(.\"'“‘\[])(?:[A-Z]|Mr|Mrs|Ms|Dr|St|Mt|Ft|Prof|Rev|Gen|Gov|Sen|Rep|Lt|Col|Capt|Sgt|"
    r"No|Jr|Sr|Fig|Vol|al|Inc|Ltd|Co|vs|approx|ca|cf|e\.g|i\.e)\.$"
)


def abbreviation_period(text: str, index: int) -> bool:
    """Whether the period at ``text[index]`` belongs to an initial or a short form ("A.",
    "U.S.", "Dr.", "No.", "e.g.") rather than ending a sentence.

    Example:
        >>> text = "Chief Justice John G. Roberts, Jr. spoke."
        >>> [abbreviation_period(text, i) for i, c in enumerate(text) if c == "."]
        [True, True, False]
    """
    return _NOT_AN_END.search(text, max(0, index - 9), index + 1) is not None


def sentences(text: str) -> list[tuple[int, int]]:
    """Character ranges ``(start, end)`` of the sentences of ``text``, in order.

    A sentence ends at ., ! or ? before a capital, a digit or a camel-case word ("efSearch",
    "iOS"), at 。！？, at a blank line, and before a line starting a Markdown heading or list
    item; not at the period of an initial or of a title or short form ("Dr.", "St.", "No.",
    "e.g."), nor at a single line break. Closing quotes and brackets stay with their sentence;
    no range starts or ends with white space, and none is empty. Runs in linear time.

    Example:
        >>> text = "HNSW builds a graph\\nof layers. It is fast.\\n\\n# Tuning\\n- M: links"
        >>> [text[a:b] for a, b in sentences(text)]
        ['HNSW builds a graph\\nof layers.', 'It is fast.', '# Tuning', '- M: links']
        >>> text = 'Dr. Herbert A. Simon won. He said "We won." Then the U.S. Navy came.'
        >>> [text[a:b] for a, b in sentences(text)]
        ['Dr. Herbert A. Simon won.', 'He said "We won."', 'Then the U.S. Navy came.']
        >>> text = "It is slow. efSearch is the breadth of the search. iOS runs on it."
        >>> [text[a:b] for a, b in sentences(text)]
        ['It is slow.', 'efSearch is the breadth of the search.', 'iOS runs on it.']
        >>> text = "北京是首都。上海很大！"
        >>> [text[a:b] for a, b in sentences(text)]
        ['北京是首都。', '上海很大！']
    """
    ranges: list[tuple[int, int]] = []
    begin = 0
    for found in _SENTENCE_BREAK.finditer(text):
        end_group = 1 if found.group(1) is not None else 2 if found.group(2) is not None else 0
        if end_group == 1:
            # A closing quote or bracket after the period ends the sentence whatever came before.
            period = found.start(1)
            if found.group(1) == "." and abbreviation_period(text, period):
                continue
        end = found.end(end_group) if end_group else found.start()
        ranges.append((begin, end))
        begin = found.end()
    ranges.append((begin, len(text)))
    trimmed = []
    for a, b in ranges:
        piece = text[a:b]
        stripped = piece.strip()
        if stripped:
            a += len(piece) - len(piece.lstrip())
            trimmed.append((a, a + len(stripped)))
    return trimmed


split_sentences = sentences
"""The same function under the name the splitters used for it."""

_TOKEN = re.compile(r"\S+")
_CLAUSE_END = frozenset(",;:")


def word_windows(text: str, start: int, end: int, max_words: int) -> list[tuple[int, int]]:
    """``text[start:end]`` cut into ranges of at most ``max_words`` words, in order.

    A sentence of ``max_words`` words or fewer is one range, as given. A longer one (text without
    sentence punctuation: a transcript, a log, a flattened table) is cut after the last word
    that ends a clause (``,`` ``;`` ``:``) or a line in the second half of each window, else
    after its last word. Ranges start and end at words and cover every word once.

    Example:
        >>> text = "one two three, four five six seven"
        >>> [text[a:b] for a, b in word_windows(text, 0, len(text), 4)]
        ['one two three,', 'four five six seven']
        >>> word_windows(text, 0, len(text), 10)
        [(0, 34)]
    """
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    words = [m.span() for m in _TOKEN.finditer(text, start, end)]
    if len(words) <= max_words:
        return [(start, end)] if words else []
    ranges: list[tuple[int, int]] = []
    first = 0
    while first < len(words):
        last = min(first + max_words, len(words)) - 1
        if last < len(words) - 1:
            for candidate in range(last, first + max_words // 2 - 1, -1):
                end_of_word = words[candidate][1]
                line_end = "\n" in text[end_of_word : words[candidate + 1][0]]
                if text[end_of_word - 1] in _CLAUSE_END or line_end:
                    last = candidate
                    break
        ranges.append((words[first][0], words[last][1]))
        first = last + 1
    return ranges


# --- Markdown headings --------------------------------------------------------------------------

_ATX_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
# A setext heading: a line of text underlined with === (level 1) or --- (level 2). The text line
# is no list item, quote, table row, heading or indented code, so "- item\n---" stays a rule.
_SETEXT_HEADING = re.compile(
    r"^(?![ \t]{4}|[ \t]*(?:[-*+>|#]|\d+[.)])[ \t])([^\n]*\S)[ \t]*\n"
    r"[ \t]{0,3}(={3,}|-{3,})[ \t]*$",
    re.MULTILINE,
)
_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)


def markdown_headings(text: str) -> list[tuple[int, int, str]]:
    r"""``(offset, level, title)`` of the headings of a Markdown ``text`` in order: ``#`` lines
    and setext headings (a line underlined with ``===``, level 1, or ``---``, level 2), not
    those inside a code fence.

    Example:
        >>> markdown_headings("Guide\n=====\nIntro.\n```\n# code\n```\n## Install\nRun.")
        [(0, 1, 'Guide'), (34, 2, 'Install')]
    """
    fences = [m.start() for m in _FENCE.finditer(text)]
    fenced = list(zip(fences[::2], [*fences[1::2], len(text)]))
    found = [(m.start(), len(m.group(1)), m.group(2).strip()) for m in _ATX_HEADING.finditer(text)]
    found += [
        (m.start(), 1 if m.group(2)[0] == "=" else 2, m.group(1).strip())
        for m in _SETEXT_HEADING.finditer(text)
    ]
    return sorted(h for h in found if not any(a <= h[0] < b for a, b in fenced))


# --- Questions ----------------------------------------------------------------------------------

KINDS = ("number", "date", "name", "where", "what")
"""The answer kinds :func:`question_kind` tells apart (``what``: anything else)."""

_NUMBER_QUESTION = re.compile(
    r"\bhow (many|much|long|old|far|large|big|tall|high|often|fast|quickly|deep|wide|heavy|"
    r"hot|cold|warm|thick|low|small|short|expensive)\b|\bwhat (percent|percentage|"
    r"number|amount|size|proportion|fraction)|\bpercent"
)
_DATE_QUESTION = re.compile(
    # "when should I ..." asks for a condition, not a time
    r"\bwhen\b(?!\s+(?:should|would|could|can|must|to|is it (?:best|better))\b)|"
    r"\bwhat (year|century|decade|date|month|day|time)\b|\b(in )?which year\b"
)
_NAME_QUESTION = re.compile(
    r"\bwho(m|se)?\b|\bwhat (is|was) the name\b|\b(what|which) (person|people|poet|writer|"
    r"author|artist|scientist|king|queen|president|leader|company|team)\b"
)
_PLACE_QUESTION = re.compile(r"\bwhere\b|\b(what|which) (city|country|state|place|region)\b")


def question_kind(question: str) -> str:
    """The kind of answer ``question`` asks for, one of :data:`KINDS`.

    The first that matches wins: ``number`` (how many / much / long / fast / deep ...,
    what percent), ``date`` (when, what year ...), ``name`` (who, which person / company ...),
    ``where`` (where, which city / country ...); anything else is ``what``.

    Example:
        >>> [question_kind(q) for q in ("How many moons?", "When did it end?", "Who won?")]
        ['number', 'date', 'name']
        >>> question_kind("Which city hosts it?"), question_kind("Why is the sky blue?")
        ('where', 'what')
        >>> question_kind("When should I use a flat index?")  # a condition, not a time
        'what'
    """
    q = question.lower()
    for kind, pattern in (
        ("number", _NUMBER_QUESTION),
        ("date", _DATE_QUESTION),
        ("name", _NAME_QUESTION),
        ("where", _PLACE_QUESTION),
    ):
        if pattern.search(q):
            return kind
    return "what"


def answer_type(question: str) -> str | None:
    """:func:`question_kind` narrowed to ``number``, ``date`` or ``name`` (``None`` otherwise).

    A place is a name here (it starts with a capital, as a name does).

    Example:
        >>> answer_type("How many people live in Berlin?"), answer_type("Who won Super Bowl 50?")
        ('number', 'name')
        >>> answer_type("Where is it?"), answer_type("Why is the sky blue?") is None
        ('name', True)
    """
    kind = question_kind(question)
    if kind == "where":
        return "name"
    return None if kind == "what" else kind


_MONTHS_TEXT = (
    "january february march april may june july august september october november december"
)
MONTHS: frozenset[str] = frozenset(_MONTHS_TEXT.split())
"""The English month names, lower case."""

_NUMBER_WORDS_TEXT = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty "
    "ninety hundred hundreds thousand thousands million millions billion billions trillion "
    "trillions several dozen dozens"
)
NUMBER_WORDS: frozenset[str] = frozenset(_NUMBER_WORDS_TEXT.split())
"""English words that start a number ("twenty", "several", "dozen"), lower case."""

_TITLES_TEXT = (
    "president king queen prince princess emperor empress pope saint st sir lord lady dr mr "
    "mrs ms prof professor general colonel captain senator governor mayor chancellor minister "
    "premier bishop archbishop cardinal rev reverend judge justice"
)
TITLES: frozenset[str] = frozenset(_TITLES_TEXT.split())
"""English titles a name may follow and that are no part of it ("President Ma Ying-jeou"),
lower case, abbreviations without their full stop ("dr", "rev")."""


def fits_kind(word: str, kind: str | None) -> bool:
    """Whether ``word`` looks like the start of an answer of ``kind`` (see :data:`KINDS`).

    A number starts with a digit, a number word or "$"; a date with a year ("1990", "1990s")
    or a month; a name or a place with a capital. ``what`` (or ``None``) fits nothing.

    Example:
        >>> fits_kind("1931", "date"), fits_kind("Jane", "name"), fits_kind("twelve", "number")
        (True, True, True)
        >>> fits_kind("anvils", "name"), fits_kind("Jane", "what")
        (False, False)
    """
    if not word:
        return False
    lower = word.lower()
    if kind == "number":
        return word[0].isdigit() or lower in NUMBER_WORDS or word == "$"
    if kind == "date":
        return (word[:4].isdigit() and len(word.rstrip("s")) in (3, 4)) or lower in MONTHS
    if kind in ("name", "where"):
        return word[0].isupper()
    return False
