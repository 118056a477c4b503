"""Wrappers of MultiSessionCollab-v0.

:class:`LifetimeEpisode` makes a user's whole lifetime (``sessions`` sessions) one episode, for
algorithms that want the long horizon in one trajectory::

    env = LifetimeEpisode(gym.make("MultiSessionCollab-v0", n_users=10), sessions=20)
    obs, info = env.reset(seed=0)                  # user 0, session 0
    obs, r, terminated, truncated, info = env.step("...")
    # when a session ends, obs is already the next session's first message and
    # info["session_end"] holds the finished session's metrics; the episode ends after the last one
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym


class LifetimeEpisode(gym.Wrapper):
    """One episode = ``sessions`` sessions of one user (see module docstring).

    ``step`` returns ``terminated=True`` when the last session ends (however it ended); between
    sessions it returns the next session's opening message, with ``info["session_end"]`` = the
    ended session's ``metrics``, ``index`` (its session index) and ``truncated`` (whether it hit
    ``max_turns``). ``reset(seed=..., options=...)`` starts a fresh lifetime as the env's reset does.

    Args:
        env: a MultiSessionCollab-v0 env.
        sessions: sessions per episode.
    """

    def __init__(self, env: gym.Env, sessions: int):
        super().__init__(env)
        if not isinstance(sessions, int) or sessions < 1:
            raise ValueError(f"sessions must be a positive int, got {sessions!r}")
        self.sessions = sessions
        self._done_sessions = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self._done_sessions = 0
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, {**info, "lifetime_session": 0}

    def step(self, action: str) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not (terminated or truncated):
            return obs, reward, False, False, {**info, "lifetime_session": self._done_sessions}
        self._done_sessions += 1
        end = {"index": info["session"], "metrics": info.get("metrics", {}), "truncated": bool(truncated)}
        if self._done_sessions >= self.sessions:
            return obs, reward, True, False, {**info, "session_end": end, "lifetime_session": self._done_sessions - 1}
        obs, first = self.env.reset()  # the same user's next session
        rest = {k: v for k, v in info.items() if k != "metrics"}  # the step's reward terms stay; metrics are in end
        return obs, reward, False, False, {**rest, **first, "session_end": end, "lifetime_session": self._done_sessions}
