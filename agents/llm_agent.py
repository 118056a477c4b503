"""An agent that answers with a chat backend; memory methods subclass it and fill the prompt."""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

from agents.base import Agent
from personalization_env.llm import ChatBackend, ChatRequest, make_backend
from personalization_env.types import Message

BASE_SYSTEM_PROMPT = (
    "You are a helpful assistant. Help the user solve their problem and state the final answer clearly."
)


def request_seed(seed: int, *parts: Any) -> int:
    """A per-request seed that depends only on (agent seed, user, session, turn), not on run order."""
    h = hashlib.blake2b("\x1f".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") >> 1


class LLMAgent(Agent):
    """Keeps the running conversation per user and asks the backend for each reply.

    Args:
        model: a chat backend or spec string (default ``"scripted"``, the embedded agent model).
        seed: seed of per-request sampling.
        system_prompt: the base instructions.
        temperature: sampling temperature passed to the backend.
    """

    name = "llm"

    def __init__(self, model: str | ChatBackend = "scripted", seed: int = 0,
                 system_prompt: str = BASE_SYSTEM_PROMPT, temperature: float = 0.7):
        self.backend = make_backend(model)
        self.seed = int(seed)
        self.system_prompt = system_prompt
        self.temperature = temperature
        self._conv: dict[str, list[Message]] = {}

    def memory_prompt(self, user_id: str, obs: Mapping[str, Any]) -> str:
        """What the method knows about the user, for the system prompt (vanilla: nothing)."""
        return ""

    def build_messages(self, obs: Mapping[str, Any]) -> tuple[Message, ...]:
        uid = str(obs["user_id"])
        conv = self._conv.setdefault(uid, [])
        conv.append(Message("user", str(obs["message"])))
        memory = self.memory_prompt(uid, obs)
        system = self.system_prompt + (f"\n\n{memory}" if memory else "")
        return (Message("system", system), *conv)

    def _act_batch(self, observations: list[Mapping[str, Any]]) -> list[str]:
        reqs = []
        for o in observations:
            msgs = self.build_messages(o)
            seed = request_seed(self.seed, o["user_id"], o.get("session", 0), o.get("turn", 0))
            reqs.append(ChatRequest(msgs, purpose="reply", temperature=self.temperature, seed=seed))
        replies = [r.text for r in self.backend.generate(reqs)]
        for o, text in zip(observations, replies):
            self._conv[str(o["user_id"])].append(Message("assistant", text))
        return replies

    def _act(self, obs: Mapping[str, Any]) -> str:  # pragma: no cover - _act_batch is used
        return self._act_batch([obs])[0]

    def _end_session(self, user_id: str, info: dict[str, Any]) -> None:
        self._conv.pop(user_id, None)

    def transcript(self, user_id: str) -> list[Message]:
        """The running session's messages with ``user_id`` (empty between sessions)."""
        return list(self._conv.get(user_id, []))
