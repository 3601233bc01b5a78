"""Judge metrics with a fake generator: retries, failures recorded, prompts visible."""

from __future__ import annotations

import pytest

from rag.core.generation import GenerationResult
from rag.eval.judge import Judge, parse_score

pytestmark = pytest.mark.unit


class ScriptedGenerator:
    """Replies from a script; an Exception item is raised instead."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = []

    def generate(self, messages, **options):
        self.calls.append(messages)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return GenerationResult(text=reply)


def test_score_maps_one_to_five_onto_zero_to_one():
    judge = Judge(ScriptedGenerator(["Score: 4"]))
    assert judge.score("faithfulness", question="q", answer="a", contexts=[]) == 0.75
    assert [parse_score(t) for t in ("Score: 1", "5", "score=3/5", "great")] == [
        0.0,
        1.0,
        0.5,
        None,
    ]


def test_failed_and_unparseable_replies_are_retried():
    generator = ScriptedGenerator([RuntimeError("timeout"), "I think it is fine", "Score: 5"])
    judge = Judge(generator, retries=2)
    assert judge.score("answer_relevance", question="q", answer="a", contexts=[]) == 1.0
    assert len(generator.calls) == 3
    assert judge.errors[0] == "RuntimeError: timeout"


def test_row_is_recorded_as_failed_after_retries_never_nan():
    generator = ScriptedGenerator([RuntimeError("down")] * 3)
    judge = Judge(generator, retries=2)
    assert judge.score("faithfulness", question="q", answer="a", contexts=[]) is None
    assert len(generator.calls) == 3


def test_prompt_holds_question_answer_and_numbered_contexts():
    generator = ScriptedGenerator(["Score: 3"])
    judge = Judge(generator)
    judge.score(
        "faithfulness",
        question="What is FAISS?",
        answer="A library.",
        contexts=[{"text": "FAISS is a library."}, {"text": "BM25 ranks."}],
    )
    prompt = generator.calls[0][0]["content"]
    assert judge.last_prompt == prompt
    assert "[1] FAISS is a library.\n[2] BM25 ranks." in prompt
    assert "Question: What is FAISS?" in prompt and "Answer: A library." in prompt


def test_unknown_judge_metric():
    from rag.core.errors import ConfigError

    with pytest.raises(ConfigError, match="Valid: faithfulness, answer_relevance"):
        Judge(ScriptedGenerator([])).score("bleu", question="q", answer="a", contexts=[])
