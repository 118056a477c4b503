"""Registry of loaded tasks, keyed by their (whitespace-normalised) problem text.

The scripted stand-in for an LLM only sees the conversation; it uses :func:`lookup_task` to "know" the
task a user brought. Every task returned by :func:`personalization_env.tasks.load_tasks` is registered.
"""

from __future__ import annotations

import re
import threading
from typing import Iterable

from personalization_env.types import Task

_WS = re.compile(r"\s+")
_MIN_SUBSTRING = 20  # shorter problems only match exactly

# Registry (the only module-level mutable state allowed): normalised problem text -> task.
_REGISTRY: dict[str, Task] = {}
_LOCK = threading.Lock()


def normalise_problem(problem: str) -> str:
    """Collapse runs of whitespace to one space and strip the ends."""
    return _WS.sub(" ", problem).strip()


def register_tasks(tasks: Iterable[Task]) -> None:
    """Register tasks by problem text (a later task with the same text replaces an earlier one)."""
    with _LOCK:
        for task in tasks:
            _REGISTRY[normalise_problem(task.problem)] = task


def lookup_task(problem: str) -> Task | None:
    """Find a loaded task by its problem text.

    The text is whitespace-normalised first. When there is no exact match, a registered problem that
    occurs inside ``problem`` (e.g. a user message that quotes the problem with a greeting around it)
    is returned; the longest such problem wins (problems under 20 characters only match exactly).

    Args:
        problem: the problem text, or a message quoting it.

    Returns:
        The registered task, or None when no loaded task matches.
    """
    if not isinstance(problem, str) or not problem.strip():
        return None
    key = normalise_problem(problem)
    with _LOCK:
        hit = _REGISTRY.get(key)
        if hit is not None:
            return hit
        best: tuple[int, Task] | None = None
        for text, task in _REGISTRY.items():
            if _MIN_SUBSTRING <= len(text) <= len(key) and text in key and (best is None or len(text) > best[0]):
                best = (len(text), task)
    return best[1] if best else None


def clear_registry() -> None:
    """Forget every registered task (for tests and long-running processes)."""
    with _LOCK:
        _REGISTRY.clear()
