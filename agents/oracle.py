"""oracle: the user's true preferences in the prompt (the upper bound every method is measured against)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from agents.llm_agent import LLMAgent
from personalization_env.types import Profile


class OracleAgent(LLMAgent):
    """Puts every true preference of the user, with its condition, into the system prompt.

    Args:
        profiles: the users' profiles (oracle knowledge; the runner passes the env's).
        **kwargs: see :class:`~agents.llm_agent.LLMAgent`.
    """

    name = "oracle"

    def __init__(self, profiles: Iterable[Profile] = (), **kwargs: Any):
        super().__init__(**kwargs)
        self.profiles = {p.user_id: p for p in profiles}

    def memory_prompt(self, user_id: str, obs: Mapping[str, Any]) -> str:
        p = self.profiles.get(user_id)
        if p is None:
            raise KeyError(f"oracle agent has no profile for user {user_id!r}; pass profiles=env.unwrapped.profiles")
        lines = "\n".join(f"- {x.statement()}" for x in p.preferences)
        return f"The user's preferences:\n{lines}"
