"""reflection: after each session the agent's model rewrites its notes about the user (MultiSessionCollab's method)."""

from __future__ import annotations

from typing import Any, Mapping

from agents.contextual import transcript_lines
from agents.llm_agent import LLMAgent, request_seed
from personalization_env.llm import ChatRequest
from personalization_env.types import Message

REFLECT_SYSTEM = (
    "You keep short notes about a user's preferences for how an assistant should reply (format, length, tone, "
    "structure, and when each applies). Given your previous notes and the latest conversation, rewrite the notes: "
    "keep what still holds, add what the user asked for, one preference per line starting with '- '."
)


class ReflectionAgent(LLMAgent):
    """Notes per user, rewritten by the agent's own model (``purpose="reflect"``) after each session."""

    name = "reflection"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.notes: dict[str, str] = {}

    def _end_session(self, user_id: str, info: dict[str, Any]) -> None:
        conv = self._conv.get(user_id)
        if conv:
            previous = self.notes.get(user_id, "- (none yet)")
            body = f"Previous notes:\n{previous}\n\nLatest conversation:\n{transcript_lines(conv)}"
            seed = request_seed(self.seed, user_id, info.get("session", 0), "reflect")
            req = ChatRequest((Message("system", REFLECT_SYSTEM), Message("user", body)), purpose="reflect",
                              temperature=0.0, seed=seed)
            self.notes[user_id] = self.backend.generate([req])[0].text.strip()
        super()._end_session(user_id, info)

    def memory_prompt(self, user_id: str, obs: Mapping[str, Any]) -> str:
        notes = self.notes.get(user_id)
        return f"Your notes about this user:\n{notes}" if notes else ""

    def state_dict(self) -> dict[str, Any]:
        return {"notes": dict(self.notes)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.notes = dict(state["notes"])
