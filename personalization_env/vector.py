"""Vector form: ``gym.make_vec("MultiSessionCollab-v0", num_envs=N)``.

Each sub-env serves one user (sub-env ``i`` starts with user ``i mod n_users``) and runs that
user's sessions one after another. The user simulator's reactions of all sub-envs are computed with
one ``respond_batch`` call per step, so an LLM simulator makes one batched request per step, not N.

Autoreset mode is ``NEXT_STEP``: the step after a session ends ignores that sub-env's action and
returns the first message of the user's next session (reward 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from personalization_env.env import MultiSessionCollabEnv


class MultiSessionCollabVectorEnv(VectorEnv):
    """N sessions in lock-step, batched through the user simulator.

    Args:
        num_envs: number of sub-envs.
        max_episode_steps: accepted for Gymnasium's vector entry point; the sub-envs truncate
            themselves at ``max_turns``.
        **kwargs: :class:`~personalization_env.env.MultiSessionCollabEnv` arguments.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": ["ansi"]}

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, **kwargs: Any):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        first = MultiSessionCollabEnv(**kwargs)
        self.envs = [first] + [self._clone(first, kwargs) for _ in range(num_envs - 1)]
        self.num_envs = num_envs
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(first.observation_space, num_envs)
        self.action_space = batch_space(first.action_space, num_envs)
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self.render_mode = None

    @staticmethod
    def _clone(first: MultiSessionCollabEnv, kwargs: dict[str, Any]) -> MultiSessionCollabEnv:
        return MultiSessionCollabEnv(**{**kwargs, "profiles": first.profiles, "n_users": None})

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        seeds = seed if isinstance(seed, list) else [None if seed is None else seed + i for i in range(self.num_envs)]
        n_users = len(self.envs[0].profiles)
        obs, infos = [], {}
        for i, env in enumerate(self.envs):
            o, info = env.reset(seed=seeds[i], options=options or {"user_index": i % n_users})
            obs.append(o)
            infos = self._add_info(infos, info, i)
        self._autoreset[:] = False
        return self._batch(obs), infos

    def step(self, actions):
        actions = list(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {len(actions)}")
        results: list[Any] = [None] * self.num_envs
        live = [i for i in range(self.num_envs) if not self._autoreset[i]]
        recs = [self.envs[i]._begin_step(actions[i]) for i in live]
        turns = self.envs[0].simulator.respond_batch([r.user for r in recs], [actions[i] for i in live]) if live else []
        for i, turn in zip(live, turns):
            results[i] = self.envs[i]._finish_step(actions[i], turn)
        infos: dict[str, Any] = {}
        obs, rew = [], np.zeros(self.num_envs)
        term, trunc = np.zeros(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool)
        for i, env in enumerate(self.envs):
            if results[i] is None:  # autoreset: next session of the same user
                o, info = env.reset()
            else:
                o, rew[i], term[i], trunc[i], info = results[i]
            obs.append(o)
            infos = self._add_info(infos, info, i)
        self._autoreset = term | trunc
        return self._batch(obs), rew, term, trunc, infos

    def _batch(self, obs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "user_id": tuple(o["user_id"] for o in obs),
            "message": tuple(o["message"] for o in obs),
            "session": np.array([o["session"] for o in obs], dtype=np.int64),
            "turn": np.array([o["turn"] for o in obs], dtype=np.int64),
        }

    def render(self) -> tuple[str, ...]:
        return tuple(e.transcript_text() for e in self.envs)
