"""contextual: raw transcripts of the user's earlier sessions in the prompt, newest first, within a budget."""

from __future__ import annotations

from typing import Any, Mapping

from agents.llm_agent import LLMAgent
from personalization_env.llm.base import approx_tokens


def transcript_lines(messages: list[Any]) -> str:
    """One line per message, ``ROLE: text`` with the text's newlines folded."""
    return "\n".join(f"{m.role.upper()}: {' '.join(m.content.split())}" for m in messages)


class ContextualAgent(LLMAgent):
    """Keeps every finished session's transcript and shows the newest ones that fit ``budget_tokens``.

    Args:
        budget_tokens: token budget of the transcripts (about 4 characters a token).
        **kwargs: see :class:`~agents.llm_agent.LLMAgent`.
    """

    name = "contextual"

    def __init__(self, budget_tokens: int = 3000, **kwargs: Any):
        super().__init__(**kwargs)
        if budget_tokens < 1:
            raise ValueError(f"budget_tokens must be >= 1, got {budget_tokens!r}")
        self.budget_tokens = budget_tokens
        self.history: dict[str, list[str]] = {}

    def _end_session(self, user_id: str, info: dict[str, Any]) -> None:
        conv = self._conv.get(user_id)
        if conv:
            self.history.setdefault(user_id, []).append(transcript_lines(conv))
        super()._end_session(user_id, info)

    def memory_prompt(self, user_id: str, obs: Mapping[str, Any]) -> str:
        parts, used = [], 0
        for k, text in reversed(list(enumerate(self.history.get(user_id, [])))):
            cost = approx_tokens(text)
            if used + cost > self.budget_tokens:
                if not parts:  # keep the newest session's tail rather than nothing
                    text = text[-4 * self.budget_tokens:]
                    parts.append(f"[session {k}, truncated]\n{text}")
                break
            parts.append(f"[session {k}]\n{text}")
            used += cost
        if not parts:
            return ""
        return "Earlier conversations with this user (newest first):\n\n" + "\n\n".join(parts)

    def state_dict(self) -> dict[str, Any]:
        return {"history": {u: list(h) for u, h in self.history.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history = {u: list(h) for u, h in state["history"].items()}
