"""oracle: the user's true preferences in the prompt (the upper bound every method is measured against)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from agents.llm_agent import LLMAgent
from personalization_env.tasks import lookup_task
from personalization_env.types import Profile


class OracleAgent(LLMAgent):
    """Puts the user's true preferences, with their conditions, into the system prompt.

    Args:
        profiles: the users' profiles (oracle knowledge; the runner passes the env's).
        task_aware: list only the preferences whose condition can hold for the session's task kind
            (the oracle also knows the task, found by its problem text). With dozens of conditional
            preferences, listing them all costs instruction-following capacity and invites misapplying
            them, so the task-aware oracle is the tighter upper bound; ``False`` lists all.
        **kwargs: see :class:`~agents.llm_agent.LLMAgent`.
    """

    name = "oracle"
    privileged = True

    def __init__(self, profiles: Iterable[Profile] = (), task_aware: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.profiles = {p.user_id: p for p in profiles}
        self.task_aware = task_aware
        self._kind: dict[str, str | None] = {}

    def memory_prompt(self, user_id: str, obs: Mapping[str, Any]) -> str:
        p = self.profiles.get(user_id)
        if p is None:
            raise KeyError(f"oracle agent has no profile for user {user_id!r}; pass profiles=env.unwrapped.profiles")
        if int(obs.get("turn", 0)) == 0 or user_id not in self._kind:
            task = lookup_task(str(obs["message"]))
            self._kind[user_id] = task.kind if task is not None else None
        kind = self._kind[user_id]
        prefs = [x for x in p.preferences
                 if not (self.task_aware and kind and x.condition.task_kinds and kind not in x.condition.task_kinds)]
        lines = "\n".join(f"- {x.statement()}" for x in prefs)
        return f"The user's preferences:\n{lines}" if prefs else ""
