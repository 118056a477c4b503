"""Derive the checker context (which situations hold) from an assistant reply."""

from __future__ import annotations

import re

from personalization_env.types import ReplyContext, Task

_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def reply_context(reply: str, task: Task, *, turn: int, previous_user_message: str, previous_label: str | None,
                  answer: str | None) -> ReplyContext:
    """The :class:`ReplyContext` of ``reply``.

    Args:
        reply: the assistant's reply.
        task: the session's task.
        turn: index of the user turn that will answer this reply.
        previous_user_message: the user's message the reply answers.
        previous_label: the true label of that message (``neg_correction`` makes it an error-correction reply).
        answer: the answer extracted from the reply, or None.
    """
    situations = set()
    if answer is not None:
        situations.update(("final_answer", "winding_down"))
    if len(_SENTENCE_END.findall(reply)) >= 2 or reply.count("\n- ") + reply.count("\n* ") >= 2:
        situations.add("explanation")
    if len(task.steps) >= 2 or task.kind in ("math", "logic"):
        situations.add("multi_step")
    if "```" in reply or task.kind == "code":
        situations.add("code")
    if previous_label == "neg_correction":
        situations.add("error_correction")
    return ReplyContext(task_kind=task.kind, situations=frozenset(situations), turn=turn,
                        previous_user_message=previous_user_message)
