"""The Agent contract every method (and every plug-in) implements.

An agent turns observations into replies and learns from what follows. One instance serves many
users: everything it knows about a user is keyed by ``obs["user_id"]`` and kept apart.

Subclasses implement :meth:`Agent._act` (and optionally :meth:`Agent._observe`,
:meth:`Agent._end_session`, :meth:`Agent._act_batch`); the public methods do the shared
bookkeeping (validation, session-end detection, oracle stripping).
"""

from __future__ import annotations

import abc
from typing import Any, Mapping, Sequence


def strip_oracle(info: Mapping[str, Any]) -> dict[str, Any]:
    """``info`` without what a deployed assistant could not know."""
    return {k: v for k, v in info.items() if k != "oracle"}


class Agent(abc.ABC):
    """Base class of all agents.

    Observations are the env's dicts (``user_id``, ``message``, ``session``, ``turn``).
    """

    name: str = "agent"
    #: True for an agent that reads the users' true profiles (an upper bound such as the oracle): only
    #: such agents are handed ``profiles`` by the benchmark runner
    privileged: bool = False

    def act(self, obs: Mapping[str, Any]) -> str:
        """The reply to ``obs``."""
        return self.act_batch([obs])[0]

    def act_batch(self, observations: Sequence[Mapping[str, Any]]) -> list[str]:
        """Replies to several observations (different users), batched where the agent can."""
        for o in observations:
            if not isinstance(o, Mapping) or "user_id" not in o or "message" not in o:
                raise TypeError(f"an observation must be a mapping with 'user_id' and 'message', got {o!r:.80}")
        replies = self._act_batch(list(observations))
        bad = [r for r in replies if not isinstance(r, str) or not r.strip()]
        if len(replies) != len(observations) or bad:
            raise RuntimeError(f"{type(self).__name__} returned {len(replies)} replies for {len(observations)} "
                               f"observations ({len(bad)} empty or not str)")
        return replies

    def observe(self, obs: Mapping[str, Any], reward: float, terminated: bool, truncated: bool,
                info: Mapping[str, Any]) -> None:
        """Learn from the env's response to the last reply for ``obs["user_id"]``."""
        self.observe_batch([obs], [reward], [terminated], [truncated], [info])

    def observe_batch(self, observations: Sequence[Mapping[str, Any]], rewards: Sequence[float],
                      terminated: Sequence[bool], truncated: Sequence[bool], infos: Sequence[Mapping[str, Any]]) -> None:
        """Batched :meth:`observe`; calls :meth:`end_session` for users whose session ended."""
        for o, r, te, tr, inf in zip(observations, rewards, terminated, truncated, infos):
            clean = strip_oracle(inf)
            self._observe(o, float(r), bool(te), bool(tr), clean)
            if te or tr:
                self.end_session(str(o["user_id"]), clean)

    def end_session(self, user_id: str, info: Mapping[str, Any] | None = None) -> None:
        """Hook at the end of a user's session (memory consolidation, reflection, ...)."""
        self._end_session(user_id, dict(info or {}))

    # ---- subclass hooks ------------------------------------------------------------------------
    def _act_batch(self, observations: list[Mapping[str, Any]]) -> list[str]:
        return [self._act(o) for o in observations]

    @abc.abstractmethod
    def _act(self, obs: Mapping[str, Any]) -> str:
        """The reply to one observation."""

    def _observe(self, obs: Mapping[str, Any], reward: float, terminated: bool, truncated: bool,
                 info: Mapping[str, Any]) -> None:
        """Learn from one transition (default: nothing)."""

    def _end_session(self, user_id: str, info: dict[str, Any]) -> None:
        """Session-end hook (default: nothing)."""

    def session_stats(self, user_id: str) -> dict[str, Any]:
        """Diagnostics of the user's last session, recorded by the runner (default: none)."""
        return {}

    # ---- persistence ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (JSON-friendly where possible)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
