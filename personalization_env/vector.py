"""Vector form: ``gym.make_vec("MultiSessionCollab-v0", num_envs=N)``.

Each sub-env serves its own user (sub-env ``i``: user ``(seed + i) mod n_users``, ``seed`` being 0
when the first reset has none; more sub-envs than users is refused) and runs that user's sessions
one after another. The model calls of all sub-envs go together: the user
simulator opens the sessions of a reset with one ``start_batch`` and reacts to a step's replies with
one ``respond_batch``, and the feedback classifier labels them with one ``classify_batch``, so with a
model-backed simulator or judge the N requests of a step are in flight at once (up to the backend's
``max_concurrency``), not sent one by one.

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
        if num_envs > len(first.profiles):
            raise ValueError(f"num_envs={num_envs} is more than the {len(first.profiles)} users loaded; each sub-env "
                             f"serves its own user: load more users (n_users, profiles) or make fewer sub-envs")
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
        # one simulator, classifier and answer judge (and so one set of model backends) for all sub-envs
        return MultiSessionCollabEnv(**{**kwargs, "profiles": first.profiles, "n_users": None,
                                        "user_simulator": first.simulator, "feedback": first.classifier,
                                        "answer_judge": first.answer_judge})

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        seeds = seed if isinstance(seed, list) else [None if seed is None else seed + i for i in range(self.num_envs)]
        n_users, base = len(self.envs[0].profiles), seed if isinstance(seed, int) else 0
        opened = self._reset_all({i: (seeds[i], options or {"user_index": (base + i) % n_users})
                                  for i in range(self.num_envs)})
        infos: dict[str, Any] = {}
        for i in range(self.num_envs):
            infos = self._add_info(infos, opened[i][1], i)
        self._autoreset[:] = False
        return self._batch([o for o, _ in opened]), infos

    def _reset_all(self, which: dict[int, tuple[int | None, dict[str, Any] | None]]) -> list[Any]:
        """Reset the sub-envs ``which`` (index -> (seed, options)) with one batched simulator call;
        returns (obs, info) at those indices."""
        out: list[Any] = [None] * self.num_envs
        begun = {i: self.envs[i]._begin_reset(seed, opts) for i, (seed, opts) in which.items()}
        if begun:
            env0 = self.envs[0]
            opened = env0.simulator.start_batch([env0.profiles[u] for u, _, _, _ in begun.values()],
                                                [task for _, _, task, _ in begun.values()],
                                                [rng for _, _, _, rng in begun.values()])
            for (i, (u, s, task, _)), (session, first) in zip(begun.items(), opened):
                out[i] = self.envs[i]._finish_reset(u, s, task, session, first)
        return out

    def step(self, actions):
        if isinstance(actions, (str, bytes)):
            raise TypeError(f"step() takes one reply per sub-env (a list or tuple of {self.num_envs} str), got a "
                            f"single {type(actions).__name__}")
        actions = list(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {len(actions)}")
        results: list[Any] = [None] * self.num_envs
        live = [i for i in range(self.num_envs) if not self._autoreset[i]]
        recs = [self.envs[i]._begin_step(actions[i]) for i in live]
        env0 = self.envs[0]
        turns = env0.simulator.respond_batch([r.user for r in recs], [actions[i] for i in live]) if live else []
        labels = env0.classifier.classify_batch([t.message for t in turns],
                                                [env0.label_context(actions[i], t) for i, t in zip(live, turns)])
        for i, turn, label in zip(live, turns, labels):
            results[i] = self.envs[i]._finish_step(actions[i], turn, label)
        reopened = self._reset_all({i: (None, None) for i in range(self.num_envs) if results[i] is None})
        infos: dict[str, Any] = {}
        obs, rew = [], np.zeros(self.num_envs)
        term, trunc = np.zeros(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool)
        for i in range(self.num_envs):
            if results[i] is None:  # autoreset: next session of the same user
                o, info = reopened[i]
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
