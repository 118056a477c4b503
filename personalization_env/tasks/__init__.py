"""Tasks users bring to sessions: seeded offline generators, MultiSessionCollab cache loaders, exact scorers.

Public API::

    load_tasks(dataset, *, n=None, seed=0, data_dir=None) -> list[Task]
    DATASETS                                   # all known dataset names
    extract_answer(task, text) -> str | None   # the final answer stated in a reply
    is_correct(task, answer) -> bool           # exact scorer for an extracted answer
    score_reply(task, text) -> bool            # is_correct(task, extract_answer(task, text))
    wrong_answer(task, rng) -> str             # a plausible, definitely-wrong answer
    answer_sentence(task, answer) -> str       # a sentence stating ``answer`` that extract_answer finds
    lookup_task(problem) -> Task | None        # every loaded task, by its problem text
"""

from __future__ import annotations

from personalization_env.tasks.datasets import DATASETS, load_tasks
from personalization_env.tasks.registry import lookup_task
from personalization_env.tasks.scoring import (
    answer_sentence,
    boxed_contents,
    extract_answer,
    is_correct,
    score_reply,
    wrong_answer,
)

__all__ = [
    "DATASETS",
    "answer_sentence",
    "boxed_contents",
    "extract_answer",
    "is_correct",
    "load_tasks",
    "lookup_task",
    "score_reply",
    "wrong_answer",
]
