"""The LLM answer judge: grades a free-form answer against the gold answer when no exact scorer can.

Exact scorers (:mod:`personalization_env.tasks.scoring`) decide every shipped dataset. Tasks whose
``meta["scoring"]`` is ``"judge"`` (free-form answers in a custom dataset) are graded by a chat model
instead when the env has an answer judge (``answer_judge="llm:<backend spec>"``); the judge answers
JSON ``{"correct": true|false, "reason": ...}`` (:data:`GRADE_SCHEMA`), validated and repaired.
Without a judge such tasks fall back to the exact scorer's normalised match.
"""

from __future__ import annotations

from typing import Any

from personalization_env.llm.base import ChatBackend, ChatRequest, make_backend
from personalization_env.llm.blocks import block
from personalization_env.llm.structured import generate_json
from personalization_env.tasks.scoring import is_correct
from personalization_env.types import Message, Task

GRADE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"correct": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["correct"],
}

_SYSTEM = ("You grade an answer to a problem against the reference answer. The answer is correct when it "
           "means the same as the reference (wording, formatting and equivalent forms do not matter). "
           'Answer with JSON only: {"correct": true|false, "reason": "..."}.')


def grade_request(task: Task, answer: str, seed: int | None = None) -> ChatRequest:
    """The judge's request for one answer."""
    body = "\n".join((block("PROBLEM", task.problem), block("REFERENCE", task.answer), block("ANSWER", answer)))
    return ChatRequest((Message("system", _SYSTEM), Message("user", body)), purpose="grade", temperature=0.0,
                       max_tokens=128, seed=seed)


class AnswerJudge:
    """Grades answers (see module docstring).

    Args:
        model: a chat backend or spec.
        max_repairs: re-asks per malformed grade.
    """

    def __init__(self, model: str | ChatBackend = "scripted", max_repairs: int = 2):
        self.backend = make_backend(model)
        self.max_repairs = max_repairs
        self.calls = 0

    def is_correct(self, task: Task, answer: str | None) -> bool:
        """Exact scoring, or the model's grade for ``meta["scoring"] == "judge"`` tasks."""
        if answer is None:
            return False
        if task.meta.get("scoring") != "judge":
            return is_correct(task, answer)
        self.calls += 1
        out = generate_json(self.backend, [grade_request(task, answer)], GRADE_SCHEMA, self.max_repairs)[0]
        return bool(out["correct"])
