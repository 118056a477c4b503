"""Drive an :class:`~agents.base.Agent` on a vector env (``gym.make_vec("MultiSessionCollab-v0", ...)``
in any mode, or a hand-built Gymnasium vector env of the same env).

The agent answers every sub-env's user in one ``act_batch`` call per step and learns from the
outcomes in one ``observe_batch`` call (which also ends each finished session for the agent).
Vector envs here reset a finished sub-env on the *next* step (Gymnasium's ``NEXT_STEP`` autoreset:
that step ignores the sub-env's action and returns the first message of its user's next session),
so the agent is not asked about a sub-env in that step: its last observation belongs to a session
that has ended.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from agents.base import Agent

_IGNORED = "(ignored: this sub-env resets)"


def _item(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def unbatch_obs(obs: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Sub-env ``i``'s observation of a batched observation dict."""
    return {k: _item(v[i]) for k, v in obs.items()}


def unbatch_info(infos: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Sub-env ``i``'s info of a batched info dict (keys whose ``_key`` mask is off for it are left out)."""
    out: dict[str, Any] = {}
    for k, v in infos.items():
        if k.startswith("_"):
            continue
        mask = infos.get("_" + k)
        if mask is not None and not bool(np.asarray(mask)[i]):
            continue
        out[k] = unbatch_info(v, i) if isinstance(v, Mapping) else _item(v[i])
    return out


def run_vector(agent: Agent, envs: Any, sessions: int, *, seed: int | None = 0) -> list[dict[str, Any]]:
    """Run ``agent`` on the vector env ``envs`` until every sub-env has finished ``sessions`` sessions.

    Args:
        agent: any agent (one instance serves every sub-env's user).
        envs: a vector env of ``MultiSessionCollab-v0`` (autoreset mode ``NEXT_STEP``).
        sessions: sessions per sub-env.
        seed: the first reset's seed (sub-env ``i`` serves user ``(seed + i) mod n_users``).

    Returns:
        One record per finished session, the first ``sessions`` of each sub-env, in the order they
        ended: ``env`` (sub-env index), ``user_id``, ``session``, ``return`` and the session metrics.
    """
    if not isinstance(sessions, int) or sessions < 1:
        raise ValueError(f"sessions must be a positive int, got {sessions!r}")
    n = envs.num_envs
    obs, _ = envs.reset(seed=seed)
    done = [0] * n
    returns = np.zeros(n)
    resetting = np.zeros(n, dtype=bool)
    records: list[dict[str, Any]] = []
    while min(done) < sessions:
        live = [i for i in range(n) if not resetting[i]]
        replies = agent.act_batch([unbatch_obs(obs, i) for i in live])
        actions = [_IGNORED] * n
        for i, reply in zip(live, replies):
            actions[i] = reply
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        infos_i = {i: unbatch_info(infos, i) for i in live}
        agent.observe_batch([unbatch_obs(obs, i) for i in live], [float(rewards[i]) for i in live],
                            [bool(terminated[i]) for i in live], [bool(truncated[i]) for i in live],
                            [infos_i[i] for i in live])
        for i in live:
            returns[i] += float(rewards[i])
            if terminated[i] or truncated[i]:
                if done[i] < sessions:
                    info = infos_i[i]
                    records.append({"env": i, "user_id": info["user_id"], "session": info["session"],
                                    "return": float(returns[i]), **info.get("metrics", {})})
                done[i] += 1
                returns[i] = 0.0
        resetting = np.asarray(terminated) | np.asarray(truncated)
    return records
